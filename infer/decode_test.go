package infer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/gidedge/gidedge/geom"
	"github.com/gidedge/gidedge/internal/sharedtest"
)

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// gradient is a w x h image whose colour changes along both axes, so a
// rotated or mirrored decode shows.
func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{R: uint8(255 * x / w), G: uint8(255 * y / h), B: 40, A: 255})
		}
	}
	return img
}

func TestReduction(t *testing.T) {
	letter := nanodetLikePreprocess() // 320x320 letterbox
	stretch := letter
	stretch.Width, stretch.Height, stretch.Resize = 320, 240, ResizeStretch
	tests := []struct {
		pre  Preprocess
		w, h int
		want int
	}{
		{letter, 640, 480, 2},   // resized to 320x240: half size is exactly that
		{letter, 1280, 960, 4},  // 320x240 at a quarter
		{letter, 4032, 3024, 8}, // a phone photo: an eighth is 504x378
		{letter, 320, 240, 1},
		{letter, 100, 100, 1},
		{stretch, 640, 480, 2},
		{stretch, 1000, 480, 2}, // the height decides
	}
	for _, tc := range tests {
		got := tc.pre.Reduction(tc.w, tc.h)
		rw, rh := tc.pre.Width, tc.pre.Height
		if tc.pre.Resize == ResizeLetter {
			rw, rh = tc.pre.letterboxSize(tc.w, tc.h)
		}
		// Whatever the table says, the rule holds: the largest divisor
		// whose reduced size still covers the resize target.
		if got > 1 && (ceilDiv(tc.w, got) < rw || ceilDiv(tc.h, got) < rh) {
			t.Errorf("%dx%d: reduction %d decodes %dx%d, below the %dx%d the model sees", tc.w, tc.h, got, ceilDiv(tc.w, got), ceilDiv(tc.h, got), rw, rh)
		}
		if next := 2 * got; next <= 8 && ceilDiv(tc.w, next) >= rw && ceilDiv(tc.h, next) >= rh {
			t.Errorf("%dx%d: reduction %d, but %d still covers %dx%d", tc.w, tc.h, got, next, rw, rh)
		}
		if got != tc.want {
			t.Errorf("%dx%d (%s %dx%d): reduction %d, want %d", tc.w, tc.h, tc.pre.Resize, tc.pre.Width, tc.pre.Height, got, tc.want)
		}
	}
}

func TestDefaultMaxPixels(t *testing.T) {
	pre := nanodetLikePreprocess()
	if got := DefaultMaxPixels(pre, 24<<30, 2); got != 256*320*320 {
		t.Errorf("320x320 model, 24 GiB: %d, want 16x the input on each side (%d)", got, 256*320*320)
	}
	small := pre
	small.Width, small.Height = 64, 64
	if got := DefaultMaxPixels(small, 24<<30, 2); got != 12<<20 {
		t.Errorf("64x64 model: %d, want the 12-megapixel floor", got)
	}
	if got := DefaultMaxPixels(pre, 1<<30, 4); got != (1<<30)/8/4/4 {
		t.Errorf("1 GiB, 4 decoders: %d, want an eighth of memory at 4 bytes a pixel per decoder", got)
	}
	big := pre
	big.Width, big.Height = 1280, 1280
	if got := DefaultMaxPixels(big, 64<<30, 1); got != MaxImagePixels {
		t.Errorf("1280x1280 model: %d, want MaxImagePixels", got)
	}
}

// pngClaiming is a valid 1x1 PNG whose header claims w x h, with a correct
// CRC: only a decoder that trusts the header before decoding refuses it
// cheaply.
func pngClaiming(t *testing.T, w, h uint32) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, solid(1, 1, color.RGBA{R: 9})); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	ihdr := data[8+8 : 8+8+13] // after the signature, length and type
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	binary.BigEndian.PutUint32(data[8+8+13:], crc32.ChecksumIEEE(data[8+4:8+8+13]))
	return data
}

func TestDecodeFor(t *testing.T) {
	pre := nanodetLikePreprocess()
	src := gradient(640, 480)
	jpg := encodeJPEG(t, src)
	im, err := DecodeFor(jpg, pre, 0)
	if err != nil {
		t.Fatal(err)
	}
	if im.Width != 640 || im.Height != 480 || im.Reduction != 2 || im.Pixels.Width != 320 || im.Pixels.Height != 240 || im.Format != "jpeg" {
		t.Fatalf("decoded %+v, want 640x480 at 1/2 (320x240 pixels)", im)
	}
	// A reduced decode looks like the image: compare a few pixels with the
	// original's 2x2 averages (JPEG and DCT scaling leave a small error).
	for _, p := range [][2]int{{10, 10}, {300, 200}, {160, 120}} {
		bgr := im.Pixels.Pix[p[1]*im.Pixels.Stride+3*p[0]:]
		want := src.RGBAAt(2*p[0], 2*p[1])
		if !near(float32(bgr[2]), float32(want.R), 8) || !near(float32(bgr[1]), float32(want.G), 8) {
			t.Errorf("pixel %v: BGR %v, original RGB %v", p, bgr[:3], want)
		}
	}
	var dst [3 * 320 * 320]float32
	tr, err := pre.ApplyImage(im, dst[:])
	if err != nil {
		t.Fatal(err)
	}
	if want := pre.Plan(640, 480); tr != want {
		t.Fatalf("transform %+v, want the full-size plan %+v", tr, want)
	}
	im.Close()

	pngData := func(w, h int) []byte {
		var b bytes.Buffer
		if err := png.Encode(&b, gradient(w, h)); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	pim, err := DecodeFor(pngData(640, 480), pre, 0)
	if err != nil || pim.Reduction != 1 || pim.Pixels.Width != 640 {
		t.Fatalf("png: %+v %v, want full size", pim, err)
	}
	pim.Close()

	tests := []struct {
		name string
		data []byte
		max  int64
		want error
	}{
		{"empty", nil, 0, ErrEmptyImage},
		{"text", []byte("hello"), 0, ErrUnknownFormat},
		{"truncated jpeg", jpg[:len(jpg)*2/3], 0, ErrCorruptImage},
		{"jpeg header only", jpg[:200], 0, ErrCorruptImage},
		{"truncated png", pngData(64, 64)[:100], 0, ErrCorruptImage},
		{"over the limit", jpg, 640*480 - 1, ErrImageTooLarge},
		{"header claims a huge png", pngClaiming(t, 60000, 60000), 0, ErrImageTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			im, err := DecodeFor(tc.data, pre, tc.max)
			if !errors.Is(err, tc.want) {
				im.Close()
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDecodeForIgnoresEXIFOrientation inserts an EXIF block saying "rotate
// 90 degrees": OpenCV would rotate by default, but boxes must stay in the
// stored pixel grid, as annotations and the Go decoder use it.
func TestDecodeForIgnoresEXIFOrientation(t *testing.T) {
	jpg := encodeJPEG(t, gradient(64, 32))
	tiff := []byte{'I', 'I', 42, 0, 8, 0, 0, 0, 1, 0, // header, IFD at 8, one entry
		0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, // Orientation (0x0112), SHORT, 1, value 6
		0, 0, 0, 0} // no next IFD
	payload := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xff, 0xe1, byte((len(payload) + 2) >> 8), byte(len(payload) + 2)}
	withExif := append(append(append([]byte{}, jpg[:2]...), append(app1, payload...)...), jpg[2:]...)
	im, err := DecodeFor(withExif, nanodetLikePreprocess(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Pixels.Width != 64 || im.Pixels.Height != 32 {
		t.Fatalf("decoded %dx%d, want the stored 64x32 (EXIF orientation ignored)", im.Pixels.Width, im.Pixels.Height)
	}
}

// TestDetectEncodedMatchesGoDecoder runs NanoDet on a 640x480 COCO JPEG
// through libjpeg-turbo at half scale and through the Go decoder at full
// size: the same objects must come out with nearly the same boxes.
func TestDetectEncodedMatchesGoDecoder(t *testing.T) {
	d := openShared(t, "nanodet_m_320.onnx", Options{})
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(t), "data", "coco128", "images", "000000000009.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := DecodeImage(data)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := d.Detect(context.Background(), img, Params{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.DetectEncoded(context.Background(), data, Params{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Width != 640 || got.Height != 480 || len(ref.Detections) == 0 {
		t.Fatalf("encoded: %dx%d, reference has %d detections", got.Width, got.Height, len(ref.Detections))
	}
	for _, r := range ref.Detections {
		if r.Score < 0.5 {
			continue
		}
		best := float32(0)
		for _, g := range got.Detections {
			if g.Class == r.Class {
				best = max(best, geom.IoU(g.Box, r.Box))
			}
		}
		if best < 0.9 {
			t.Errorf("%s %.2f at %v: best IoU %.2f with the reduced decode's detections %+v", r.Label, r.Score, r.Box, best, got.Detections)
		}
	}
}
