package quantize

import (
	"fmt"
	"math"
)

// Activations names the 8-bit type of quantized activations.
type Activations string

// Activation types.
const (
	// Uint8 is asymmetric uint8 (zero point anywhere in 0..255): the fast
	// path of ONNX Runtime's x86 kernels (u8 activations × s8 weights).
	Uint8 Activations = "uint8"
	// Int8 is symmetric int8 (zero point 0), what TensorRT expects.
	Int8 Activations = "int8"
)

// ParseActivations checks an activation type name.
func ParseActivations(s string) (Activations, error) {
	switch a := Activations(s); a {
	case Uint8, Int8:
		return a, nil
	}
	return "", fmt.Errorf("quantize: activation type %q, want uint8 or int8", s)
}

// QParams are one tensor's per-tensor quantization parameters:
// real = (q - ZeroPoint) · Scale.
type QParams struct {
	Scale     float32
	ZeroPoint int32
}

// ActivationParams maps a calibrated range to 8-bit parameters. The range is
// widened to include 0 so zero (padding, ReLU output) is exact.
func ActivationParams(r Range, act Activations) QParams {
	lo, hi := math.Min(r.Min, 0), math.Max(r.Max, 0)
	if act == Int8 {
		amax := math.Max(-lo, hi)
		if amax == 0 {
			return QParams{Scale: 1}
		}
		return QParams{Scale: float32(amax / 127)}
	}
	if hi == lo {
		return QParams{Scale: 1}
	}
	scale := (hi - lo) / 255
	zp := math.Round(-lo / scale)
	return QParams{Scale: float32(scale), ZeroPoint: int32(math.Min(math.Max(zp, 0), 255))}
}

// minWeightScale keeps all-zero channels from producing a zero scale.
const minWeightScale = 1e-12

// QuantizedWeights are int8 symmetric weights, per output channel (len(Scales)
// equal to the channel count along Axis) or per tensor (one scale).
type QuantizedWeights struct {
	Values []int8
	Scales []float32
	Axis   int
}

// WeightOptions say how QuantizeWeights quantizes one weight tensor.
type WeightOptions struct {
	// Axis is the output-channel axis (0 for Conv's [M, C/group, k…]).
	Axis int
	// PerChannel gives each slice along Axis its own scale.
	PerChannel bool
	// MinScales, when not nil, are per-channel lower bounds on the scale
	// (to keep the bias representable in int32).
	MinScales []float64
	// Range is the grid: [-127, 127] (full, the default) or [-63, 63].
	Range WeightRange
}

// QuantizeWeights quantizes a weight tensor to int8 with zero point 0 and
// values in [-L, L], L = 127 (or 63 for WeightsReduced). Per channel, each
// slice along the axis gets its own scale max|w|/L; per tensor one scale.
func QuantizeWeights(w []float32, dims []int64, opts WeightOptions) (QuantizedWeights, error) {
	axis, perChannel, minScales := opts.Axis, opts.PerChannel, opts.MinScales
	level := opts.Range.maxLevel()
	if axis < 0 || axis >= len(dims) {
		return QuantizedWeights{}, fmt.Errorf("quantize: weight axis %d outside dims %v", axis, dims)
	}
	channels := 1
	if perChannel {
		channels = int(dims[axis])
	}
	inner := 1 // elements between consecutive channel indices
	for _, d := range dims[axis+1:] {
		inner *= int(d)
	}
	channelOf := func(i int) int {
		if !perChannel {
			return 0
		}
		return (i / inner) % channels
	}
	amax := make([]float64, channels)
	for i, v := range w {
		c := channelOf(i)
		amax[c] = math.Max(amax[c], math.Abs(float64(v)))
	}
	q := QuantizedWeights{Values: make([]int8, len(w)), Scales: make([]float32, channels), Axis: axis}
	scales := make([]float64, channels)
	for c := range scales {
		s := math.Max(amax[c]/level, minWeightScale)
		if minScales != nil {
			if perChannel {
				s = math.Max(s, minScales[c])
			} else {
				for _, m := range minScales {
					s = math.Max(s, m)
				}
			}
		}
		// Store the float32 scale and quantize with it, so the stored grid is exact.
		q.Scales[c] = float32(s)
		scales[c] = float64(q.Scales[c])
	}
	for i, v := range w {
		x := math.Round(float64(v) / scales[channelOf(i)])
		q.Values[i] = int8(math.Min(math.Max(x, -level), level))
	}
	return q, nil
}

// maxInt32 bounds a quantized bias.
const maxInt32 = math.MaxInt32

// biasHeadroom is the largest |quantized bias| allowed: half of int32, so
// the kernel's int32 accumulator still has room for the products.
const biasHeadroom = 1 << 30

// BiasScaleFloor returns, per output channel, the smallest weight scale for
// which bias/(inputScale·weightScale) stays within ±2^30 in int32.
func BiasScaleFloor(bias []float32, inputScale float32) []float64 {
	out := make([]float64, len(bias))
	for c, b := range bias {
		out[c] = math.Abs(float64(b)) / (float64(inputScale) * biasHeadroom)
	}
	return out
}

// QuantizeBias quantizes a bias to int32 with scale inputScale·weightScale[c]
// (zero point 0), the form ONNX Runtime fuses into QLinearConv and QGemm.
func QuantizeBias(bias []float32, inputScale float32, weightScales []float32) ([]int32, []float32) {
	q := make([]int32, len(bias))
	scales := make([]float32, len(bias))
	for c, b := range bias {
		ws := weightScales[0]
		if len(weightScales) > 1 {
			ws = weightScales[c]
		}
		s := float32(float64(inputScale) * float64(ws))
		scales[c] = s
		x := math.Round(float64(b) / float64(s))
		q[c] = int32(math.Min(math.Max(x, -maxInt32), maxInt32))
	}
	if len(weightScales) == 1 {
		return q, scales[:min(1, len(scales))]
	}
	return q, scales
}

// WeightRange is the grid int8 weights use.
type WeightRange string

// Weight ranges.
const (
	// WeightsAuto is WeightsFull unless this CPU's 8-bit kernels add pairs
	// of products in 16 bits (x86 without VNNI), then WeightsReduced.
	WeightsAuto WeightRange = "auto"
	// WeightsFull uses [-127, 127].
	WeightsFull WeightRange = "full"
	// WeightsReduced uses 7 bits, [-63, 63] (ONNX Runtime's reduce_range):
	// then 2 · 255 · 63 < 2^15, so a u8 × s8 pair sum never saturates an
	// int16, at the price of one bit of weight precision.
	WeightsReduced WeightRange = "reduced"
)

// ParseWeightRange checks a weight range name.
func ParseWeightRange(s string) (WeightRange, error) {
	switch w := WeightRange(s); w {
	case WeightsAuto, WeightsFull, WeightsReduced:
		return w, nil
	}
	return "", fmt.Errorf("quantize: weight range %q, want auto, full or reduced", s)
}

// maxLevel is the largest |q| of the grid.
func (w WeightRange) maxLevel() float64 {
	if w == WeightsReduced {
		return 63
	}
	return 127
}
