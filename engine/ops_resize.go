package engine

import "github.com/gidedge/gidedge/engine/backend"

// CoordinateMode says how a resize maps an output position to an input
// position (ONNX Resize's coordinate_transformation_mode). With s the
// scale factor (output size over input size, or the factor given):
//
//	CoordHalfPixel         src = (dst + 0.5)/s − 0.5
//	CoordPyTorchHalfPixel  the same, but 0 when the output has length 1
//	                       (PyTorch's align_corners=False)
//	CoordAlignCorners      src = dst·(in − 1)/(out − 1), 0 for out = 1
//	CoordAsymmetric        src = dst/s
type CoordinateMode uint8

// Coordinate modes.
const (
	CoordHalfPixel CoordinateMode = iota + 1
	CoordPyTorchHalfPixel
	CoordAlignCorners
	CoordAsymmetric
)

var coordinateNames = [...]string{"", "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"}

// String is the mode's ONNX name.
func (m CoordinateMode) String() string {
	if m > 0 && int(m) < len(coordinateNames) {
		return coordinateNames[m]
	}
	return "CoordinateMode?"
}

// ParseCoordinateMode returns the mode of an ONNX name; ok is false for a
// name it does not know.
func ParseCoordinateMode(name string) (m CoordinateMode, ok bool) {
	for i, n := range coordinateNames {
		if i > 0 && n == name {
			return CoordinateMode(i), true
		}
	}
	return 0, false
}

// LinearAxis returns the backend's mapping for one axis resized from in to
// out positions; scale is the factor the mode divides by (0: out/in).
func LinearAxis(mode CoordinateMode, in, out int, scale float64) backend.LinearAxis {
	if scale <= 0 {
		scale = float64(out) / float64(in)
	}
	switch mode {
	case CoordAlignCorners:
		if out == 1 {
			return backend.LinearAxis{}
		}
		return backend.LinearAxis{Scale: float32(float64(in-1) / float64(out-1))}
	case CoordAsymmetric:
		return backend.LinearAxis{Scale: float32(1 / scale)}
	case CoordPyTorchHalfPixel:
		if out == 1 {
			return backend.LinearAxis{}
		}
	}
	return backend.LinearAxis{Scale: float32(1 / scale), Offset: float32(0.5/scale - 0.5)}
}

// ResizeOptions configures ResizeBilinear: the coordinate mode and the
// scale factors it uses (0: output size over input size; ONNX Resize
// given scales uses them even when the output size was rounded down).
type ResizeOptions struct {
	Mode           CoordinateMode
	ScaleH, ScaleW float64
}

// ResizeBilinear resizes x [N, C, H, W] to [N, C, outH, outW] by bilinear
// interpolation, source positions clamped to the input (ONNX Resize with
// mode "linear" on the two spatial axes; PyTorch's interpolate with mode
// "bilinear").
func ResizeBilinear(x *Tensor, outH, outW int, opt ResizeOptions) *Tensor {
	const name = "ResizeBilinear"
	d := device(name, x)
	check(x.Rank() == 4 && outH > 0 && outW > 0, name, "input must be NCHW and target %dx%d positive", []any{outH, outW}, x)
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	check(h > 0 && w > 0, name, "input must not be empty", nil, x)
	check(opt.Mode >= CoordHalfPixel && opt.Mode <= CoordAsymmetric, name, "unknown coordinate mode %d", []any{opt.Mode}, x)
	check(opt.ScaleH >= 0 && opt.ScaleW >= 0, name, "scales %v and %v must not be negative", []any{opt.ScaleH, opt.ScaleW}, x)
	g := backend.ResizeGeometry{N: n, C: c, H: h, W: w, OutH: outH, OutW: outW}
	rows, cols := LinearAxis(opt.Mode, h, outH, opt.ScaleH), LinearAxis(opt.Mode, w, outW, opt.ScaleW)
	out := alloc(d, []int{n, c, outH, outW})
	d.ResizeLinear(backend.ResizeLinearArgs{Geometry: g, Rows: rows, Cols: cols, X: x.buf, Y: out.buf})
	record(out, name, func(out *Tensor) {
		d.ResizeLinearBackward(backend.ResizeLinearBackwardArgs{Geometry: g, Rows: rows, Cols: cols, DY: out.grad, DX: x.gradDest()})
	}, nil, x)
	return out
}
