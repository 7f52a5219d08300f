// Package onnximport turns a float ONNX graph into trainable gidedge modules:
// the part of a pretrained network up to named tensors becomes a
// models.GraphConfig (engine ops over named tensors) plus its weights, which a
// detector config takes as its backbone and, optionally, its neck. It is what
// `gidedge import` runs.
//
// The importer translates the ops of OpTable (convolutions with groups and
// dilation, batch norm, the usual activations, arithmetic, concatenation,
// pooling, nearest and bilinear resizing, and the Reshape/Transpose/Split/
// Slice patterns of channel shuffles and space-to-depth stems) at every
// opset they have in the table; anything else fails with an
// *UnsupportedError naming the node, its op type, the model's opset and the
// reason. Shapes baked into the graph for the exported batch and image size
// (Reshape targets, Resize sizes) are rewritten so the imported network
// follows the input: a Reshape target keeps the batch and spatial dimensions
// of its input as expressions of it ("in0", "in2/2"), a Resize keeps its
// scale factor.
//
// Every import is checked before anything is written: the imported modules
// run in the engine on a seeded random image and ONNX Runtime runs the
// original graph truncated at the same tensors; each output's largest
// difference relative to its scale must stay within the tolerance (1e-4 by
// default). The imported network also runs once at another batch size and
// image size, to prove that it follows the input.
//
// Layout: tensors are float32 NCHW; the image input is [N, 3, H, W]. With
// Options.BGR the first convolutions' input channels are reversed so the
// imported network reads gidedge's RGB input.
//
// Errors: every failure is returned, prefixed "onnximport:", naming the file,
// node, tensor or option at fault; errors.Is(err, ErrUnsupported) for an op
// the importer cannot translate, ErrParity for a failed check.
package onnximport
