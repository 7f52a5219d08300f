// Package onnxgraph loads, inspects, edits and saves ONNX models held as the
// generated protobuf types of package onnxpb. It is the shared toolbox of the
// packages that write ONNX graphs (export, quantize): node and tensor
// builders, producer/consumer indexes, topological order, initializers as
// float32, value_info and shape lookup, exposing intermediate tensors as graph
// outputs, BatchNormalization folding, default-domain opset upgrades, and an
// atomic Save.
//
// Tensors are read as float32 (or int64 for shapes and indices) in row-major
// order whatever their storage (raw_data, typed fields, external data next to
// the model file). Graph edits work in place on the *onnxpb.GraphProto; callers
// that must keep the original take a Clone first.
//
// Error policy: every error is returned, never panicked; messages are
// lowercase, start with "onnxgraph:", name the file, node, tensor or attribute
// at fault and what was expected, and wrap the cause with %w. ErrNotONNX and
// ErrUpgrade are sentinels for errors.Is.
package onnxgraph
