// Package infer runs ONNX object detectors on images: it decodes an encoded
// JPEG or PNG for the model (DecodeFor: header first against a pixel limit,
// then libjpeg-turbo or libpng through OpenCV, a JPEG at the DCT scale the
// model's input needs), turns it into the model's input tensor in one pass
// (Preprocess, into a pooled tensor before any session is taken), runs ONNX
// Runtime sessions from a pool (Detector.Run), decodes the model's outputs
// through an adapter chosen from the model's metadata or output names
// (gidedge exports, NanoDet, UltraFace, YOLOX), and applies a class-aware
// non-maximum suppression.
//
// Tensors are float32 NCHW with batch 1. Boxes are x1, y1, x2, y2: in
// model-input pixels inside adapters, and in source-image pixels in every
// Detection a caller sees (Transform maps one to the other).
//
// Error policy: every error is returned, never panicked; messages are
// lowercase, start with "infer:", name the file, tensor or field at fault and
// what was expected, and wrap the cause with %w. Conditions callers act on
// (an empty or undecodable image, an unknown format, a missing execution
// provider) are sentinels for errors.Is.
package infer
