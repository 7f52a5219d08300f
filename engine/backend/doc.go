// Package backend is the seam between the engine and the devices its
// kernels run on. The engine keeps shapes, autograd and errors; a Backend
// owns memory (opaque Buffers) and runs every kernel. Backends register
// themselves from init, as image/png does with image:
//
//	import _ "github.com/gidedge/gidedge/engine/cpu" // registers "cpu"
//
// and programs pick one by name (Use, Open, or the GIDEDGE_DEVICE
// environment variable read by Default).
//
// # Buffers
//
// A Buffer is a run of elements of one DType in a backend's memory. The
// engine never touches its contents except through FromHost and ToHost.
// Only Float32 (tensor values) and Int32 (indices: argmax positions,
// gather indices, class labels) are implemented; Float16, BFloat16 and
// Int8 are reserved names. Alloc returns a buffer with undefined contents;
// Free hands it back for reuse. A buffer that is never freed is reclaimed
// when it is garbage collected. Every kernel takes the buffers of one
// backend only.
//
// # Execution model
//
// Kernels may be queued and run later, in call order (a GPU stream).
// FromHost and ToHost are ordered with the kernels: ToHost (and Sync) wait
// for everything queued before they return. Free is ordered too: a freed
// buffer may be handed out again by Alloc, but only kernels queued after
// the Free will see the new owner's data. The CPU backends run every kernel
// before returning.
//
// # Arguments
//
// Each kernel family is one method taking an argument struct: the op as an
// enum, the geometry (shapes, strides, padding, groups) and the buffers.
// Element counts and strides count elements, not bytes. Tensors are
// row-major; images are NCHW. Shapes in View-based kernels have at most
// MaxRank dimensions.
//
// Outputs are explicit. A forward output is a Buffer the kernel writes in
// full. A gradient output is a Dest: with Accumulate the kernel adds into
// it, without it the kernel ignores its old contents and writes every
// element (zeros where nothing flows). A Dest whose Buf is nil is not
// wanted and is not computed.
//
// # Aliasing
//
//   - Elementwise kernels (Unary, UnaryBackward, Binary, Where, Loss,
//     LossBackward, AdamW, SGD) may write into a buffer they also read,
//     provided it is the same buffer at the same offset with the output's
//     dense layout (in place). Broadcast operands (zero strides) must not
//     be the output.
//   - Every other kernel's outputs must not overlap any of its inputs or
//     each other (Copy, Reduce, Softmax, Gemm, Conv2d, BatchNorm, Pool2d,
//     Upsample, Gather, ScatterAdd, ROIAlign, PairwiseDistance and their
//     backward passes).
//   - The optimizer kernels update Param and their state buffers in place
//     by definition.
//
// # Numbers
//
// Results must agree with the reference backend (package ref) within the
// tolerances of the conformance suite (package backendtest): elementwise
// kernels to a few float32 ulps, reductions, GEMM and convolutions to a
// relative error that grows with √(terms summed). NaN and ±Inf propagate
// as IEEE arithmetic makes them (max-like kernels treat NaN as the
// maximum); Gemm with Beta == 0 does not read C, as BLAS.
//
// # Errors
//
// Kernels panic with a *Error on a programmer error (a buffer too short,
// the wrong dtype, a freed buffer); the engine validates shapes before it
// calls them and turns these panics into errors at its API edge.
// Conditions a caller can act on (unknown device, a device that cannot be
// opened) are returned as errors by Open and Use.
package backend
