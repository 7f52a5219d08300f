package dataset

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"os"
)

// maxImagePixels bounds decoded images so a corrupt header cannot make a
// worker allocate gigabytes.
const maxImagePixels = 64 << 20

// DecodeFile reads and decodes a JPEG or PNG file into 8-bit RGBA. Errors
// wrap ErrMissingImage or ErrDecode and name the file.
func DecodeFile(path string) (*image.RGBA, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMissingImage, err)
	}
	img, err := decodeBytes(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDecode, path, err)
	}
	return img, nil
}

func decodeBytes(data []byte) (*image.RGBA, error) {
	var decode func([]byte) (image.Image, error)
	var config func([]byte) (image.Config, error)
	switch {
	case len(data) >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff:
		decode = func(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }
		config = func(b []byte) (image.Config, error) { return jpeg.DecodeConfig(bytes.NewReader(b)) }
	case len(data) >= 8 && string(data[:8]) == "\x89PNG\r\n\x1a\n":
		decode = func(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }
		config = func(b []byte) (image.Config, error) { return png.DecodeConfig(bytes.NewReader(b)) }
	case len(data) == 0:
		return nil, fmt.Errorf("empty file")
	default:
		return nil, fmt.Errorf("not a jpeg or png (first bytes % x)", data[:min(len(data), 4)])
	}
	cfg, err := config(data)
	if err != nil {
		return nil, err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width*cfg.Height > maxImagePixels {
		return nil, fmt.Errorf("size %dx%d, want positive and at most %d pixels", cfg.Width, cfg.Height, maxImagePixels)
	}
	img, err := decode(data)
	if err != nil {
		return nil, err
	}
	if m, ok := img.(*image.RGBA); ok && m.Rect.Min == (image.Point{}) {
		return m, nil
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	// draw.Draw has fast paths for the YCbCr and Gray images JPEG yields.
	draw.Draw(out, out.Rect, img, b.Min, draw.Src)
	return out, nil
}
