package infer

import (
	"fmt"
	"image"
	"image/draw"
	"math"
	"sync"
)

// Preprocess says how an image becomes the model's input tensor.
//
// A pixel p (0–255) of channel c becomes (p*PixelScale - Mean[c]) / Std[c];
// Mean and Std are in the model's channel order (Mean[0] belongs to the
// first plane of the tensor, which is blue when ChannelOrder is "bgr").
type Preprocess struct {
	Width        int        `json:"width"`         // model input width in pixels
	Height       int        `json:"height"`        // model input height in pixels
	Layout       string     `json:"layout"`        // "NCHW" (only layout supported now)
	ChannelOrder string     `json:"channel_order"` // "rgb" | "bgr"
	Resize       string     `json:"resize"`        // "stretch" | "letterbox"
	PadValue     float32    `json:"pad_value"`     // letterbox fill, in raw pixel units (0-255)
	PixelScale   float32    `json:"pixel_scale"`   // raw pixel * PixelScale before (v-Mean)/Std
	Mean         [3]float32 `json:"mean"`
	Std          [3]float32 `json:"std"`
}

// Transform maps model-input coordinates back to the source image:
// src = (input - Pad) / Scale.
type Transform struct {
	ScaleX, ScaleY      float32
	PadX, PadY          float32
	SrcWidth, SrcHeight int
}

// Channel orders, resize modes and the layout a Preprocess may name.
const (
	OrderRGB      = "rgb"
	OrderBGR      = "bgr"
	ResizeStretch = "stretch"
	ResizeLetter  = "letterbox"
	LayoutNCHW    = "NCHW"
)

// Validate reports the first field that cannot describe a preprocessing.
func (p Preprocess) Validate() error {
	switch {
	case p.Width <= 0 || p.Height <= 0:
		return fmt.Errorf("infer: preprocess: input size %dx%d, want positive width and height", p.Width, p.Height)
	case p.Layout != LayoutNCHW:
		return fmt.Errorf("infer: preprocess: layout %q, want %q", p.Layout, LayoutNCHW)
	case p.ChannelOrder != OrderRGB && p.ChannelOrder != OrderBGR:
		return fmt.Errorf("infer: preprocess: channel_order %q, want %q or %q", p.ChannelOrder, OrderRGB, OrderBGR)
	case p.Resize != ResizeStretch && p.Resize != ResizeLetter:
		return fmt.Errorf("infer: preprocess: resize %q, want %q or %q", p.Resize, ResizeStretch, ResizeLetter)
	case !(p.PixelScale > 0) || math.IsInf(float64(p.PixelScale), 0):
		return fmt.Errorf("infer: preprocess: pixel_scale %v, want a positive number", p.PixelScale)
	}
	for c, s := range p.Std {
		if s == 0 || math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return fmt.Errorf("infer: preprocess: std[%d] is %v, want a finite non-zero number", c, s)
		}
	}
	return nil
}

// TensorLen is the number of float32 values Apply writes: 3*Height*Width.
func (p Preprocess) TensorLen() int { return 3 * p.Width * p.Height }

// Plan returns the transform Apply would use for a source of the given size.
func (p Preprocess) Plan(srcWidth, srcHeight int) Transform {
	t := Transform{SrcWidth: srcWidth, SrcHeight: srcHeight}
	if srcWidth <= 0 || srcHeight <= 0 {
		return t
	}
	if p.Resize != ResizeLetter {
		t.ScaleX = float32(p.Width) / float32(srcWidth)
		t.ScaleY = float32(p.Height) / float32(srcHeight)
		return t
	}
	nw, nh := p.letterboxSize(srcWidth, srcHeight)
	t.ScaleX = float32(nw) / float32(srcWidth)
	t.ScaleY = float32(nh) / float32(srcHeight)
	t.PadX = float32((p.Width - nw) / 2)
	t.PadY = float32((p.Height - nh) / 2)
	return t
}

// letterboxSize is the size of the resized image inside the padded input.
func (p Preprocess) letterboxSize(sw, sh int) (int, int) {
	scale := math.Min(float64(p.Width)/float64(sw), float64(p.Height)/float64(sh))
	nw := int(math.Round(float64(sw) * scale))
	nh := int(math.Round(float64(sh) * scale))
	return max(1, min(nw, p.Width)), max(1, min(nh, p.Height))
}

// ToSource maps a box from model-input pixels to source pixels, clipped to
// the source image.
func (t Transform) ToSource(x1, y1, x2, y2 float32) (float32, float32, float32, float32) {
	w, h := float32(t.SrcWidth), float32(t.SrcHeight)
	return clamp((x1-t.PadX)/t.ScaleX, 0, w), clamp((y1-t.PadY)/t.ScaleY, 0, h),
		clamp((x2-t.PadX)/t.ScaleX, 0, w), clamp((y2-t.PadY)/t.ScaleY, 0, h)
}

// ToInput maps a source-image point to model-input pixels (no clipping).
func (t Transform) ToInput(x, y float32) (float32, float32) {
	return x*t.ScaleX + t.PadX, y*t.ScaleY + t.PadY
}

func clamp(v, lo, hi float32) float32 {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}

// Packed is an interleaved 8-bit image with three or four bytes a pixel, such
// as a gocv BGR frame (Order "bgr", 3 bytes) or image.RGBA's Pix (Order "rgb",
// 4 bytes). Stride is the number of bytes between rows.
type Packed struct {
	Pix                   []byte
	Width, Height, Stride int
	BytesPerPixel         int
	Order                 string // "rgb" | "bgr": byte order of the first three bytes of a pixel
}

func (s Packed) validate() error {
	switch {
	case s.Width <= 0 || s.Height <= 0:
		return fmt.Errorf("infer: packed image is %dx%d, want positive size", s.Width, s.Height)
	case s.BytesPerPixel != 3 && s.BytesPerPixel != 4:
		return fmt.Errorf("infer: packed image has %d bytes per pixel, want 3 or 4", s.BytesPerPixel)
	case s.Order != OrderRGB && s.Order != OrderBGR:
		return fmt.Errorf("infer: packed image order %q, want %q or %q", s.Order, OrderRGB, OrderBGR)
	case s.Stride < s.Width*s.BytesPerPixel:
		return fmt.Errorf("infer: packed image stride %d is below width %d x %d bytes", s.Stride, s.Width, s.BytesPerPixel)
	case len(s.Pix) < (s.Height-1)*s.Stride+s.Width*s.BytesPerPixel:
		return fmt.Errorf("infer: packed image has %d bytes, want at least %d for %dx%d stride %d",
			len(s.Pix), (s.Height-1)*s.Stride+s.Width*s.BytesPerPixel, s.Width, s.Height, s.Stride)
	}
	return nil
}

var rgbaPool sync.Pool // *[]byte scratch for images without a packed fast path

// Apply writes img into dst (3*Height*Width values, CHW) and returns the
// transform from model-input to source coordinates. dst must not alias the
// image's pixels.
func (p Preprocess) Apply(img image.Image, dst []float32) (Transform, error) {
	if img == nil {
		return Transform{}, fmt.Errorf("infer: preprocess: nil image")
	}
	b := img.Bounds()
	switch m := img.(type) {
	case *image.RGBA:
		return p.ApplyPacked(Packed{Pix: m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], Width: b.Dx(), Height: b.Dy(), Stride: m.Stride, BytesPerPixel: 4, Order: OrderRGB}, dst)
	case *image.NRGBA:
		return p.ApplyPacked(Packed{Pix: m.Pix[m.PixOffset(b.Min.X, b.Min.Y):], Width: b.Dx(), Height: b.Dy(), Stride: m.Stride, BytesPerPixel: 4, Order: OrderRGB}, dst)
	}
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return Transform{}, fmt.Errorf("infer: preprocess: image is %dx%d, want positive size", b.Dx(), b.Dy())
	}
	need := 4 * b.Dx() * b.Dy()
	var buf []byte
	if v, ok := rgbaPool.Get().(*[]byte); ok && cap(*v) >= need {
		buf = (*v)[:need]
	} else {
		buf = make([]byte, need)
	}
	defer rgbaPool.Put(&buf)
	rgba := &image.RGBA{Pix: buf, Stride: 4 * b.Dx(), Rect: image.Rect(0, 0, b.Dx(), b.Dy())}
	// draw has fast paths for YCbCr (JPEG) and Gray sources.
	draw.Draw(rgba, rgba.Rect, img, b.Min, draw.Src)
	return p.ApplyPacked(Packed{Pix: rgba.Pix, Width: b.Dx(), Height: b.Dy(), Stride: rgba.Stride, BytesPerPixel: 4, Order: OrderRGB}, dst)
}

// ApplyPacked is Apply for an interleaved 8-bit image; it reads the pixels in
// place, which is how camera frames avoid a conversion to image.Image.
func (p Preprocess) ApplyPacked(src Packed, dst []float32) (Transform, error) {
	return p.applyScaled(src, src.Width, src.Height, dst)
}

// applyScaled preprocesses src, which holds an srcWidth x srcHeight image
// possibly decoded at a reduced size: the transform and the resized size
// come from the original size, the pixels from src. Letterbox, resize,
// normalisation and the HWC to CHW transpose happen in one pass over dst.
func (p Preprocess) applyScaled(src Packed, srcWidth, srcHeight int, dst []float32) (Transform, error) {
	if err := p.Validate(); err != nil {
		return Transform{}, err
	}
	if err := src.validate(); err != nil {
		return Transform{}, err
	}
	if srcWidth < src.Width || srcHeight < src.Height {
		return Transform{}, fmt.Errorf("infer: preprocess: pixels are %dx%d, more than the %dx%d image they stand for", src.Width, src.Height, srcWidth, srcHeight)
	}
	if len(dst) != p.TensorLen() {
		return Transform{}, fmt.Errorf("infer: preprocess: destination has %d values, want 3x%dx%d = %d", len(dst), p.Height, p.Width, p.TensorLen())
	}
	t := p.Plan(srcWidth, srcHeight)

	// Byte offset inside a source pixel of each model channel.
	var off [3]int
	if src.Order == p.ChannelOrder {
		off = [3]int{0, 1, 2}
	} else {
		off = [3]int{2, 1, 0}
	}
	var gain, bias [3]float32
	for c := range 3 {
		gain[c] = p.PixelScale / p.Std[c]
		bias[c] = -p.Mean[c] / p.Std[c]
	}

	rw, rh := p.Width, p.Height
	px, py := 0, 0
	if p.Resize == ResizeLetter {
		rw, rh = p.letterboxSize(srcWidth, srcHeight)
		px, py = int(t.PadX), int(t.PadY)
		fillBorder(dst, p.Width, p.Height, px, py, rw, rh, p.PadValue, gain, bias)
	}
	if src.Width == rw && src.Height == rh {
		convertPacked(src, off, gain, bias, dst, p.Width, p.Height, px, py)
	} else {
		resizeBilinear(src, off, gain, bias, dst, p.Width, p.Height, px, py, rw, rh)
	}
	return t, nil
}

// fillBorder writes the normalised pad value into every position of the
// width x height planes outside the rw x rh window at (px, py).
func fillBorder(dst []float32, width, height, px, py, rw, rh int, pad float32, gain, bias [3]float32) {
	plane := width * height
	for c := range 3 {
		fill := pad*gain[c] + bias[c]
		d := dst[c*plane : (c+1)*plane]
		for y := range height {
			row := d[y*width : (y+1)*width]
			if y < py || y >= py+rh {
				for i := range row {
					row[i] = fill
				}
				continue
			}
			for i := range px {
				row[i] = fill
			}
			for i := px + rw; i < width; i++ {
				row[i] = fill
			}
		}
	}
}

// convertPacked copies src, already of the window's size, into the window
// at (px, py) of the CHW tensor dst, applying v*gain[c]+bias[c].
func convertPacked(src Packed, off [3]int, gain, bias [3]float32, dst []float32, width, height, px, py int) {
	plane := width * height
	d0, d1, d2 := dst[:plane], dst[plane:2*plane], dst[2*plane:]
	bpp := src.BytesPerPixel
	for y := range src.Height {
		row := src.Pix[y*src.Stride : y*src.Stride+src.Width*bpp]
		base := (y+py)*width + px
		o0, o1, o2 := d0[base:base+src.Width], d1[base:base+src.Width], d2[base:base+src.Width]
		for x := range src.Width {
			px := row[x*bpp : x*bpp+3]
			o0[x] = float32(px[off[0]])*gain[0] + bias[0]
			o1[x] = float32(px[off[1]])*gain[1] + bias[1]
			o2[x] = float32(px[off[2]])*gain[2] + bias[2]
		}
	}
}

// resizeBilinear samples src into the rw x rh window at (px, py) of the CHW
// tensor dst (planes of width x height), with OpenCV's INTER_LINEAR
// half-pixel convention, applying v*gain[c]+bias[c] to every value.
func resizeBilinear(src Packed, off [3]int, gain, bias [3]float32, dst []float32, width, height, px, py, rw, rh int) {
	xs0 := make([]int, rw)
	xs1 := make([]int, rw)
	fxs := make([]float32, rw)
	sx := float64(src.Width) / float64(rw)
	for x := range rw {
		i0, i1, f := tap(x, sx, src.Width)
		xs0[x], xs1[x], fxs[x] = i0*src.BytesPerPixel, i1*src.BytesPerPixel, f
	}
	sy := float64(src.Height) / float64(rh)
	plane := width * height
	d0, d1, d2 := dst[:plane], dst[plane:2*plane], dst[2*plane:]
	o0, o1, o2 := off[0], off[1], off[2]
	for y := range rh {
		y0, y1, fy := tap(y, sy, src.Height)
		r0 := src.Pix[y0*src.Stride:]
		r1 := src.Pix[y1*src.Stride:]
		base := (y+py)*width + px
		gy := 1 - fy
		for x := range rw {
			a, b, fx := xs0[x], xs1[x], fxs[x]
			gx := 1 - fx
			w00, w01, w10, w11 := gy*gx, gy*fx, fy*gx, fy*fx
			v0 := w00*float32(r0[a+o0]) + w01*float32(r0[b+o0]) + w10*float32(r1[a+o0]) + w11*float32(r1[b+o0])
			v1 := w00*float32(r0[a+o1]) + w01*float32(r0[b+o1]) + w10*float32(r1[a+o1]) + w11*float32(r1[b+o1])
			v2 := w00*float32(r0[a+o2]) + w01*float32(r0[b+o2]) + w10*float32(r1[a+o2]) + w11*float32(r1[b+o2])
			i := base + x
			d0[i] = v0*gain[0] + bias[0]
			d1[i] = v1*gain[1] + bias[1]
			d2[i] = v2*gain[2] + bias[2]
		}
	}
}

// tap returns the two source indices and the weight of the second for
// destination index i at the given source/destination scale.
func tap(i int, scale float64, n int) (int, int, float32) {
	s := (float64(i)+0.5)*scale - 0.5
	if s < 0 {
		s = 0
	}
	i0 := int(s)
	f := float32(s - float64(i0))
	if i0 >= n-1 {
		return n - 1, n - 1, 0
	}
	return i0, i0 + 1, f
}
