// Package export writes a gidedge detector (package models) as a standard
// ONNX graph that ONNX Runtime and TensorRT can run, with everything a server
// needs to use it stored in the file's metadata.
//
// The graph is built by walking the detector's module tree (backbone blocks,
// feature pyramid, head towers) and emitting one ONNX op per engine op, with
// inference-time simplifications: every batch norm is folded into the weights
// and bias of the convolution before it (in float64), activations become
// their ONNX ops (Relu, Clip, LeakyRelu, HardSwish or HardSigmoid·x,
// Sigmoid·x), the pyramid's nearest-neighbour upsampling becomes Resize
// (opset ≥ 11, asymmetric coordinates, floor rounding, the engine's indexing)
// or Upsample/Resize-10 on older opsets.
//
// Tensor layout and names (the contract other packages and users rely on):
//
//   - input "images": [N, 3, H, W] float32, normalised as the metadata says;
//     N is a symbolic dimension "batch" unless a fixed batch is asked for.
//   - raw outputs, per pyramid level i = 0 (finest) …: "cls_logits_<i>"
//     [N, A·K, Hi, Wi], "box_reg_<i>" [N, A·4, Hi, Wi] and, for FCOS,
//     "centerness_<i>" [N, 1, Hi, Wi] logits.
//   - decoded outputs: "boxes" [N, R, 4] x1, y1, x2, y2 in input pixels
//     (not clipped) and "scores" [N, R, K] sigmoid class probabilities, rows in
//     the (level, y, x, anchor) order of models.Flatten; FCOS adds "centerness"
//     [N, R, 1] probabilities, which are not multiplied into the scores.
//   - with features: "feature_<i>" [N, C, Hi, Wi] (pyramid outputs) plus the
//     raw outputs, whatever the output mode.
//
// Metadata: metadata_props "gidedge" holds infer.ModelInfo as JSON (class
// names, input size, layout, normalisation, channel order, resize mode, head
// family, strides, anchors, score and NMS defaults, gidedge version) and
// "gidedge.config" the detector's models.Config as JSON.
//
// Every export is checked before it is written: the same seeded input batch
// goes through the engine (inference mode, no gradients) and through ONNX
// Runtime, and each output's largest absolute difference divided by the
// output's scale (its largest absolute reference value) must stay within the
// tolerance (1e-4 by default). A failed check is an error wrapping ErrParity
// and no file is written; a written file is complete (temporary file, fsync,
// rename).
//
// Errors: every user-facing failure (unreadable or corrupt checkpoint, bad
// option, unsupported module, parity) is returned as an error prefixed
// "export:" that names the file, option or module and what was expected.
// Programmer errors panic with a typed value: an *engine.OpError for a shape
// mistake in the engine's forward pass, a *BuildError for a broken invariant
// of the graph builder. Nothing in this package recovers; the command line's
// one recover point (engine.Guard) turns them into the command's error.
package export
