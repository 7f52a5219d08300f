package dataset

import (
	"image"
	"math"
)

// Resize modes of a Loader.
const (
	ResizeLetterbox = "letterbox" // keep aspect ratio, centre, pad
	ResizeStretch   = "stretch"   // scale each axis to the input size
)

// Transform maps source-image pixels to network-input pixels:
//
//	input = src' * Scale + Pad,  src' = SrcWidth - src (x only) when FlipX, else src.
//
// It is the exact geometry a Loader applied to one sample, so predictions in
// input pixels map back to the original image with ToSource. Without
// augmentation it equals the transform of infer.Preprocess for the same size
// and resize mode (src = (input - Pad) / Scale).
type Transform struct {
	ScaleX, ScaleY      float64
	PadX, PadY          float64
	FlipX               bool
	SrcWidth, SrcHeight int
}

// ToInput maps a box from source to input pixels (not clipped).
func (t Transform) ToInput(b Box) Box {
	if t.FlipX {
		w := float64(t.SrcWidth)
		b.X1, b.X2 = w-b.X2, w-b.X1
	}
	return Box{b.X1*t.ScaleX + t.PadX, b.Y1*t.ScaleY + t.PadY, b.X2*t.ScaleX + t.PadX, b.Y2*t.ScaleY + t.PadY}
}

// ToSource maps a box from input pixels back to the source image, clipped
// to it.
func (t Transform) ToSource(b Box) Box {
	s := Box{(b.X1 - t.PadX) / t.ScaleX, (b.Y1 - t.PadY) / t.ScaleY, (b.X2 - t.PadX) / t.ScaleX, (b.Y2 - t.PadY) / t.ScaleY}
	if t.FlipX {
		w := float64(t.SrcWidth)
		s.X1, s.X2 = w-s.X2, w-s.X1
	}
	return s.Clip(float64(t.SrcWidth), float64(t.SrcHeight))
}

// plainTransform is the resize without augmentation. Letterbox rounds the
// resized size and the padding to whole pixels and centres the image, the
// same rule infer.Preprocess uses, so training and serving see the same
// pixels.
func plainTransform(mode string, w, h, srcW, srcH int) Transform {
	t := Transform{SrcWidth: srcW, SrcHeight: srcH}
	if mode == ResizeStretch {
		t.ScaleX = float64(w) / float64(srcW)
		t.ScaleY = float64(h) / float64(srcH)
		return t
	}
	scale := math.Min(float64(w)/float64(srcW), float64(h)/float64(srcH))
	rw := max(1, min(w, int(math.Round(float64(srcW)*scale))))
	rh := max(1, min(h, int(math.Round(float64(srcH)*scale))))
	t.ScaleX = float64(rw) / float64(srcW)
	t.ScaleY = float64(rh) / float64(srcH)
	t.PadX = float64((w - rw) / 2)
	t.PadY = float64((h - rh) / 2)
	return t
}

// colorMatrix is an affine map on 0–255 RGB: out[c] = M[c][0..2]·rgb + M[c][3].
type colorMatrix [3][4]float32

var identityColor = colorMatrix{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}}

// tap is one axis of bilinear sampling for one output index.
type tap struct {
	i0, i1 int     // source indices (byte offsets for x)
	f      float32 // weight of i1
	inside bool    // the output pixel's centre falls on the source image
}

// axisTaps computes, for n output pixels, where they sample a source axis of
// length srcN under input = src*scale + pad (mirrored when flip), with
// OpenCV's half-pixel INTER_LINEAR convention and edge clamping.
func axisTaps(dst []tap, scale, pad float64, srcN int, flip bool, stride int) {
	lo, hi := pad, pad+float64(srcN)*scale
	for o := range dst {
		c := float64(o) + 0.5
		if c < lo || c >= hi {
			dst[o] = tap{}
			continue
		}
		s := (c-pad)/scale - 0.5
		if flip {
			s = float64(srcN-1) - s
		}
		s = math.Max(0, s)
		i0 := int(s)
		f := float32(s - float64(i0))
		i1 := i0 + 1
		if i0 >= srcN-1 {
			i0, i1, f = srcN-1, srcN-1, 0
		}
		dst[o] = tap{i0 * stride, i1 * stride, f, true}
	}
}

// render samples src through t into the CHW planes of dst (3*h*w values),
// applies the colour matrix, clamps to 0–255 and normalises with
// gain/bias. Pixels outside the image get the pad value.
func render(dst []float32, w, h int, src *image.RGBA, t Transform, cm colorMatrix, pad float32, gain, bias [3]float32, xs []tap, ys []tap) {
	sw, sh := src.Rect.Dx(), src.Rect.Dy()
	axisTaps(xs[:w], t.ScaleX, t.PadX, sw, t.FlipX, 4)
	axisTaps(ys[:h], t.ScaleY, t.PadY, sh, false, src.Stride)
	plane := w * h
	r, g, b := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	var fill [3]float32
	for c := range 3 {
		fill[c] = pad*gain[c] + bias[c]
	}
	pix := src.Pix
	plain := cm == identityColor
	for y := range h {
		ty := ys[y]
		row := y * w
		if !ty.inside {
			for x := range w {
				r[row+x], g[row+x], b[row+x] = fill[0], fill[1], fill[2]
			}
			continue
		}
		r0, r1 := pix[ty.i0:], pix[ty.i1:]
		fy := ty.f
		gy := 1 - fy
		for x := range w {
			tx := xs[x]
			if !tx.inside {
				r[row+x], g[row+x], b[row+x] = fill[0], fill[1], fill[2]
				continue
			}
			a, c, fx := tx.i0, tx.i1, tx.f
			gx := 1 - fx
			w00, w01, w10, w11 := gy*gx, gy*fx, fy*gx, fy*fx
			vr := w00*float32(r0[a]) + w01*float32(r0[c]) + w10*float32(r1[a]) + w11*float32(r1[c])
			vg := w00*float32(r0[a+1]) + w01*float32(r0[c+1]) + w10*float32(r1[a+1]) + w11*float32(r1[c+1])
			vb := w00*float32(r0[a+2]) + w01*float32(r0[c+2]) + w10*float32(r1[a+2]) + w11*float32(r1[c+2])
			if !plain {
				vr, vg, vb = clamp255(cm[0][0]*vr+cm[0][1]*vg+cm[0][2]*vb+cm[0][3]),
					clamp255(cm[1][0]*vr+cm[1][1]*vg+cm[1][2]*vb+cm[1][3]),
					clamp255(cm[2][0]*vr+cm[2][1]*vg+cm[2][2]*vb+cm[2][3])
			}
			r[row+x] = vr*gain[0] + bias[0]
			g[row+x] = vg*gain[1] + bias[1]
			b[row+x] = vb*gain[2] + bias[2]
		}
	}
}

func clamp255(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return v
}
