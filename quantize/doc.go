// Package quantize turns a float ONNX detector into a static INT8 model in
// the QDQ format (QuantizeLinear → DequantizeLinear pairs around every
// quantized tensor, int8 weights read through DequantizeLinear), which ONNX
// Runtime fuses into integer kernels on CPUs and TensorRT builds an INT8
// engine from. It works on any CNN given its preprocessing, not only on
// gidedge's own exports.
//
// Run does the whole job, as `gidedge quantize` does; its steps are exported
// for other tools:
//
//   - Prepare cleans a model up without changing what it computes (weights
//     listed as inputs dropped, Constant nodes to initializers, batch norms
//     folded) and upgrades it to opset 13 for per-channel weights.
//   - Equalize rescales activation channels, through Conv, Add, Concat,
//     pooling, resizing, ReLU/LeakyReLU and SiLU, so that one per-tensor
//     8-bit grid fits every channel; the float model computes the same.
//   - NewPlan decides which nodes and tensors are quantized (Selection:
//     exclusions, the float tail, activation type, weight grid).
//   - Calibrate runs the float model over images and collects a bounded
//     histogram per tensor; Calibration.Ranges turns them into ranges with a
//     Method (minmax, percentile, entropy). Run then fits the lower bound of
//     a tensor read only by a LeakyReLU or SiLU to the error after that
//     activation.
//   - Build writes the QDQ model of a plan and its ranges.
//   - Inspect diagnoses a QDQ model against its float model, tensor by
//     tensor: SQNR and cosine with upstream error and with the layer alone,
//     calibrated against observed range, and the first layer where the
//     error jumps (Inspection.WriteText, Inspection.Plot).
//
// With an accuracy Budget (MaxAPDrop or MinCosine), Run keeps the layers
// that make the most error in float, ranked by the per-layer analysis, until
// the budget holds, and fails with ErrBudgetUnreachable, writing nothing,
// when it cannot.
//
// Tensors are float32 NCHW with batch 1 during calibration and evaluation.
// Activations are uint8 asymmetric (ONNX Runtime's fast CPU path) or int8
// symmetric (TensorRT); weights are int8 symmetric per output channel, on a
// 7-bit grid where the CPU's kernels could saturate (x86 without VNNI,
// detected with package hostinfo).
//
// Error policy: every error is returned, never panicked; messages start
// with "quantize:", name the file, node, tensor or option at fault and what
// was expected, and wrap their cause. ErrNothingToQuantize, ErrNoImages,
// ErrNoImageInput, ErrCacheMismatch and ErrBudgetUnreachable are sentinels
// for errors.Is. Run writes its output atomically and only when every step
// succeeded.
package quantize
