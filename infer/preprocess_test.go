package infer

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"strings"
	"testing"
)

func nanodetLikePreprocess() Preprocess {
	return Preprocess{
		Width: 320, Height: 320, Layout: LayoutNCHW, ChannelOrder: OrderBGR, Resize: ResizeLetter,
		PadValue: 0, PixelScale: 1,
		Mean: [3]float32{103.53, 116.28, 123.675}, Std: [3]float32{57.375, 57.12, 58.395},
	}
}

func solid(w, h int, c color.RGBA) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = c.R, c.G, c.B, 255
	}
	return img
}

func near(a, b, tol float32) bool { return float32(math.Abs(float64(a-b))) <= tol }

func TestPlanLetterbox(t *testing.T) {
	p := nanodetLikePreprocess()
	tests := []struct {
		name              string
		w, h              int
		scale, padX, padY float32
	}{
		{"landscape 640x480", 640, 480, 0.5, 0, 40},
		{"portrait 480x640", 480, 640, 0.5, 40, 0},
		{"square upscale", 100, 100, 3.2, 0, 0},
		{"wide 1000x100", 1000, 100, 0.32, 0, 144},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := p.Plan(tc.w, tc.h)
			if !near(tr.ScaleX, tc.scale, 1e-6) || !near(tr.ScaleY, tc.scale, 1e-6) || tr.PadX != tc.padX || tr.PadY != tc.padY {
				t.Fatalf("Plan(%d,%d) = %+v, want scale %v pad (%v,%v)", tc.w, tc.h, tr, tc.scale, tc.padX, tc.padY)
			}
			// Round trip: a source box goes to input pixels and back unchanged.
			x1, y1 := tr.ToInput(10, 20)
			x2, y2 := tr.ToInput(float32(tc.w)-5, float32(tc.h)-7)
			a, b, c, d := tr.ToSource(x1, y1, x2, y2)
			want := [4]float32{10, 20, float32(tc.w) - 5, float32(tc.h) - 7}
			for i, got := range [4]float32{a, b, c, d} {
				if !near(got, want[i], 1e-3) {
					t.Fatalf("round trip coordinate %d = %v, want %v", i, got, want[i])
				}
			}
		})
	}
}

func TestToSourceClips(t *testing.T) {
	tr := nanodetLikePreprocess().Plan(640, 480)
	// A box that reaches into the top padding and past the right edge.
	x1, y1, x2, y2 := tr.ToSource(-5, 10, 330, 300)
	if x1 != 0 || y1 != 0 || x2 != 640 || y2 != 480 {
		t.Fatalf("ToSource clipped to (%v,%v,%v,%v), want (0,0,640,480)", x1, y1, x2, y2)
	}
}

func TestApplyChannelOrderAndNormalisation(t *testing.T) {
	img := solid(64, 48, color.RGBA{R: 200, G: 100, B: 50})
	for _, order := range []string{OrderRGB, OrderBGR} {
		t.Run(order, func(t *testing.T) {
			p := Preprocess{Width: 32, Height: 32, Layout: LayoutNCHW, ChannelOrder: order, Resize: ResizeLetter,
				PadValue: 114, PixelScale: 1.0 / 255, Mean: [3]float32{0.1, 0.2, 0.3}, Std: [3]float32{0.5, 0.25, 2}}
			dst := make([]float32, p.TensorLen())
			tr, err := p.Apply(img, dst)
			if err != nil {
				t.Fatal(err)
			}
			if tr.PadY != 4 || tr.PadX != 0 {
				t.Fatalf("pad = (%v,%v), want (0,4)", tr.PadX, tr.PadY)
			}
			raw := [3]float32{200, 100, 50}
			if order == OrderBGR {
				raw = [3]float32{50, 100, 200}
			}
			plane := 32 * 32
			for c := range 3 {
				want := (raw[c]/255 - p.Mean[c]) / p.Std[c]
				if got := dst[c*plane+16*32+16]; !near(got, want, 1e-5) {
					t.Errorf("channel %d centre = %v, want %v", c, got, want)
				}
				wantPad := (114.0/255 - p.Mean[c]) / p.Std[c]
				if got := dst[c*plane+1*32+3]; !near(got, wantPad, 1e-5) {
					t.Errorf("channel %d pad = %v, want %v", c, got, wantPad)
				}
			}
		})
	}
}

func TestApplyPackedMatchesImage(t *testing.T) {
	// A gradient so that interpolation and channel offsets both matter.
	img := image.NewRGBA(image.Rect(0, 0, 37, 23))
	bgr := make([]byte, 37*23*3)
	for y := range 23 {
		for x := range 37 {
			r, g, b := uint8(x*6), uint8(y*11), uint8((x+y)*4)
			img.SetRGBA(x, y, color.RGBA{r, g, b, 255})
			i := (y*37 + x) * 3
			bgr[i], bgr[i+1], bgr[i+2] = b, g, r
		}
	}
	p := nanodetLikePreprocess()
	p.Width, p.Height = 40, 30
	a := make([]float32, p.TensorLen())
	b := make([]float32, p.TensorLen())
	if _, err := p.Apply(img, a); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ApplyPacked(Packed{Pix: bgr, Width: 37, Height: 23, Stride: 37 * 3, BytesPerPixel: 3, Order: OrderBGR}, b); err != nil {
		t.Fatal(err)
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("value %d: image path %v, packed path %v", i, a[i], b[i])
		}
	}
}

func TestApplyStretchAndYCbCr(t *testing.T) {
	// A JPEG decodes to YCbCr, which goes through the draw conversion.
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, solid(50, 20, color.RGBA{R: 128, G: 128, B: 128}), &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	img, err := DecodeImage(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*image.YCbCr); !ok {
		t.Fatalf("jpeg decoded to %T, want *image.YCbCr", img)
	}
	p := Preprocess{Width: 20, Height: 10, Layout: LayoutNCHW, ChannelOrder: OrderRGB, Resize: ResizeStretch,
		PixelScale: 1, Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128}}
	dst := make([]float32, p.TensorLen())
	tr, err := p.Apply(img, dst)
	if err != nil {
		t.Fatal(err)
	}
	if tr.ScaleX != 0.4 || tr.ScaleY != 0.5 || tr.PadX != 0 || tr.PadY != 0 {
		t.Fatalf("stretch transform = %+v", tr)
	}
	for i, v := range dst {
		if !near(v, 1.0/128, 2.0/128) {
			t.Fatalf("value %d = %v, want about %v for a grey image", i, v, 1.0/128)
		}
	}
}

func TestApplyErrors(t *testing.T) {
	good := nanodetLikePreprocess()
	img := solid(8, 8, color.RGBA{})
	tests := []struct {
		name string
		p    Preprocess
		dst  int
		want string
	}{
		{"short destination", good, 10, "destination has 10 values"},
		{"bad order", func() Preprocess { p := good; p.ChannelOrder = "gbr"; return p }(), good.TensorLen(), "channel_order"},
		{"bad resize", func() Preprocess { p := good; p.Resize = "crop"; return p }(), good.TensorLen(), "resize"},
		{"zero std", func() Preprocess { p := good; p.Std[1] = 0; return p }(), good.TensorLen(), "std[1]"},
		{"zero scale", func() Preprocess { p := good; p.PixelScale = 0; return p }(), good.TensorLen(), "pixel_scale"},
		{"layout", func() Preprocess { p := good; p.Layout = "NHWC"; return p }(), good.TensorLen(), "layout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.p.Apply(img, make([]float32, tc.dst))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "infer: ") {
				t.Fatalf("error = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDecodeImage(t *testing.T) {
	var pngBuf bytes.Buffer
	if err := png.Encode(&pngBuf, solid(3, 2, color.RGBA{R: 1})); err != nil {
		t.Fatal(err)
	}
	img, err := DecodeImage(pngBuf.Bytes())
	if err != nil || img.Bounds().Dx() != 3 || img.Bounds().Dy() != 2 {
		t.Fatalf("png: %v, %v", img, err)
	}
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrEmptyImage},
		{"text", []byte("hello world"), ErrUnknownFormat},
		{"truncated png", pngBuf.Bytes()[:20], ErrCorruptImage},
		{"jpeg magic only", []byte{0xff, 0xd8, 0xff, 0xe0, 0, 0}, ErrCorruptImage},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeImage(tc.data); !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
		})
	}
}

func FuzzDecodeImage(f *testing.F) {
	var buf bytes.Buffer
	_ = png.Encode(&buf, solid(4, 4, color.RGBA{G: 9}))
	f.Add(buf.Bytes())
	buf.Reset()
	_ = jpeg.Encode(&buf, solid(4, 4, color.RGBA{B: 9}), nil)
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := DecodeImage(data)
		if err == nil && (img.Bounds().Dx() <= 0 || img.Bounds().Dy() <= 0) {
			t.Fatalf("decoded an empty image without error")
		}
	})
}

func TestModelInfoRoundTrip(t *testing.T) {
	info := ModelInfo{
		GidedgeVersion: "0.1.0",
		ClassNames:     []string{"rbc", "wbc", "platelets"},
		Input:          nanodetLikePreprocess(),
		Head: HeadInfo{Family: "fcos", Outputs: OutputsDecoded, Strides: []int{8, 16, 32},
			ScoreThreshold: 0.3, NMSIoU: 0.6, MaxDetections: 100, BoxesOutput: "boxes", ScoresOutput: "scores"},
	}
	meta, err := info.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadModelInfo(meta)
	if err != nil || !ok {
		t.Fatalf("ReadModelInfo: ok=%v err=%v", ok, err)
	}
	if got.Input != info.Input || got.Head.BoxesOutput != "boxes" || len(got.ClassNames) != 3 {
		t.Fatalf("round trip = %+v", got)
	}
	if !strings.Contains(meta[MetadataKey], `"channel_order":"bgr"`) {
		t.Fatalf("metadata JSON lacks snake_case keys: %s", meta[MetadataKey])
	}
	if _, ok, err := ReadModelInfo(map[string]string{"other": "x"}); ok || err != nil {
		t.Fatalf("absent key: ok=%v err=%v", ok, err)
	}
	bad := []struct{ name, json, want string }{
		{"not json", "{", "unexpected EOF"},
		{"unknown field", `{"class_names":["a"],"colour":1}`, "unknown field"},
		{"no classes", `{"class_names":[]}`, "class_names is empty"},
		{"decoded without names", strings.Replace(meta[MetadataKey], `"boxes_output":"boxes"`, `"boxes_output":""`, 1), "boxes_output"},
		{"bad outputs", strings.Replace(meta[MetadataKey], `"outputs":"decoded"`, `"outputs":"logits"`, 1), `outputs "logits"`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, ok, err := ReadModelInfo(map[string]string{MetadataKey: tc.json})
			if !ok || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ok=%v err=%v, want error mentioning %q", ok, err, tc.want)
			}
		})
	}
}

func FuzzReadModelInfo(f *testing.F) {
	meta, _ := ModelInfo{ClassNames: []string{"a"}, Input: nanodetLikePreprocess(),
		Head: HeadInfo{Outputs: OutputsDecoded, BoxesOutput: "b", ScoresOutput: "s", ScoreThreshold: 0.3, NMSIoU: 0.5}}.Metadata()
	f.Add(meta[MetadataKey])
	f.Add(`{"class_names":[]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		info, ok, err := ReadModelInfo(map[string]string{MetadataKey: raw})
		if !ok {
			t.Fatal("present key reported absent")
		}
		if err == nil {
			if verr := info.Validate(); verr != nil {
				t.Fatalf("accepted invalid info: %v", verr)
			}
		}
	})
}
