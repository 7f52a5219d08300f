package infer

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
)

// MaxImagePixels bounds the size of an image DecodeImage accepts, so a small
// compressed body cannot make the server allocate gigabytes.
const MaxImagePixels = 64 << 20

var (
	// ErrEmptyImage reports an image body of zero bytes.
	ErrEmptyImage = errors.New("infer: empty image")
	// ErrUnknownFormat reports bytes that are neither JPEG nor PNG.
	ErrUnknownFormat = errors.New("infer: unknown image format (want jpeg or png)")
	// ErrCorruptImage reports a JPEG or PNG that fails to decode.
	ErrCorruptImage = errors.New("infer: corrupt image")
	// ErrImageTooLarge reports an image beyond MaxImagePixels.
	ErrImageTooLarge = errors.New("infer: image too large")
)

// ImageFormat names the format of an encoded image from its first bytes:
// "jpeg", "png", or "" when neither.
func ImageFormat(data []byte) string {
	switch {
	case len(data) >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff:
		return "jpeg"
	case len(data) >= 8 && bytes.Equal(data[:8], []byte("\x89PNG\r\n\x1a\n")):
		return "png"
	}
	return ""
}

// DecodeImage decodes a JPEG or PNG. The format is found from the bytes, not
// from a file name or content type.
func DecodeImage(data []byte) (image.Image, error) {
	if len(data) == 0 {
		return nil, ErrEmptyImage
	}
	format := ImageFormat(data)
	var (
		cfg image.Config
		err error
	)
	switch format {
	case "jpeg":
		cfg, err = jpeg.DecodeConfig(bytes.NewReader(data))
	case "png":
		cfg, err = png.DecodeConfig(bytes.NewReader(data))
	default:
		n := min(len(data), 4)
		return nil, fmt.Errorf("%w: first bytes % x", ErrUnknownFormat, data[:n])
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %v", ErrCorruptImage, format, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%w: %s is %dx%d", ErrCorruptImage, format, cfg.Width, cfg.Height)
	}
	if int64(cfg.Width)*int64(cfg.Height) > MaxImagePixels {
		return nil, fmt.Errorf("%w: %s is %dx%d, limit %d pixels", ErrImageTooLarge, format, cfg.Width, cfg.Height, MaxImagePixels)
	}
	var img image.Image
	if format == "jpeg" {
		img, err = jpeg.Decode(bytes.NewReader(data))
	} else {
		img, err = png.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptImage, format, err)
	}
	return img, nil
}
