package infer

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"image/png"

	"gocv.io/x/gocv"
)

// Image is an encoded JPEG or PNG decoded for one model's preprocessing:
// 8-bit BGR pixels held by OpenCV, possibly at a reduced scale, with the
// size of the original image. Close frees the pixels.
type Image struct {
	mat gocv.Mat
	// Pixels views the decoded pixels (valid until Close).
	Pixels Packed
	// Width and Height are the original image's size; boxes are mapped
	// back to it whatever the decoded scale.
	Width, Height int
	Format        string // "jpeg" or "png"
	// Reduction is the JPEG DCT scaling the pixels were decoded at: 1, 2,
	// 4 or 8 (each side divided by it, rounded up).
	Reduction int
}

// Close frees the decoded pixels.
func (im *Image) Close() {
	if im != nil {
		_ = im.mat.Close()
	}
}

// ImageSize reads an encoded image's format and size from its header alone
// (image.DecodeConfig), so a size limit is enforced before any pixel is
// decoded.
func ImageSize(data []byte) (format string, width, height int, err error) {
	if len(data) == 0 {
		return "", 0, 0, ErrEmptyImage
	}
	format = ImageFormat(data)
	switch format {
	case "jpeg":
		cfg, e := jpeg.DecodeConfig(bytes.NewReader(data))
		width, height, err = cfg.Width, cfg.Height, e
	case "png":
		cfg, e := png.DecodeConfig(bytes.NewReader(data))
		width, height, err = cfg.Width, cfg.Height, e
	default:
		n := min(len(data), 4)
		return "", 0, 0, fmt.Errorf("%w: first bytes % x", ErrUnknownFormat, data[:n])
	}
	if err != nil {
		return format, 0, 0, fmt.Errorf("%w: %s header: %v", ErrCorruptImage, format, err)
	}
	if width <= 0 || height <= 0 {
		return format, 0, 0, fmt.Errorf("%w: %s is %dx%d", ErrCorruptImage, format, width, height)
	}
	return format, width, height, nil
}

// ImageInfo is what an encoded image's header says.
type ImageInfo struct {
	Format        string // "jpeg" or "png"
	Width, Height int
}

// Pixels is Width x Height.
func (i ImageInfo) Pixels() int64 { return int64(i.Width) * int64(i.Height) }

// CheckImage reads the header (ImageSize) and refuses an image above
// maxPixels (0 means MaxImagePixels) with ErrImageTooLarge, before any
// pixel is decoded.
func CheckImage(data []byte, maxPixels int64) (ImageInfo, error) {
	format, w, h, err := ImageSize(data)
	if err != nil {
		return ImageInfo{}, err
	}
	info := ImageInfo{Format: format, Width: w, Height: h}
	if maxPixels <= 0 {
		maxPixels = MaxImagePixels
	}
	if info.Pixels() > maxPixels {
		return info, fmt.Errorf("%w: %s is %dx%d (%.1f megapixels), the limit is %.1f megapixels",
			ErrImageTooLarge, format, w, h, float64(info.Pixels())/1e6, float64(maxPixels)/1e6)
	}
	return info, nil
}

// DecodeFor decodes a JPEG or PNG for preprocessing pre. The header is read
// first: an image above maxPixels (width x height; 0 means MaxImagePixels)
// is ErrImageTooLarge before any pixel is decoded. A JPEG is decoded by
// libjpeg-turbo (through OpenCV) at the smallest DCT scale (1/2, 1/4, 1/8)
// that still covers the size pre resizes it to, which is several times
// faster and smaller than decoding every pixel only to average them away;
// the resize to the model input then happens in pre.ApplyImage. EXIF
// orientation is ignored, as annotations and the Go decoders do.
func DecodeFor(data []byte, pre Preprocess, maxPixels int64) (*Image, error) {
	info, err := CheckImage(data, maxPixels)
	if err != nil {
		return nil, err
	}
	format, w, h := info.Format, info.Width, info.Height
	reduction := 1
	flags := gocv.IMReadColor | gocv.IMReadIgnoreOrientation
	if format == "jpeg" {
		if !jpegComplete(data) {
			return nil, fmt.Errorf("%w: jpeg: truncated (no end-of-image marker after the last scan)", ErrCorruptImage)
		}
		reduction = pre.Reduction(w, h)
		switch reduction {
		case 2:
			flags = gocv.IMReadReducedColor2 | gocv.IMReadIgnoreOrientation
		case 4:
			flags = gocv.IMReadReducedColor4 | gocv.IMReadIgnoreOrientation
		case 8:
			flags = gocv.IMReadReducedColor8 | gocv.IMReadIgnoreOrientation
		}
	}
	if format == "png" && !bytes.Contains(data[max(0, len(data)-4096):], []byte("IEND")) {
		return nil, fmt.Errorf("%w: png: truncated (no IEND chunk)", ErrCorruptImage)
	}
	mat, err := gocv.IMDecode(data, flags)
	if err != nil || mat.Empty() {
		_ = mat.Close()
		return nil, fmt.Errorf("%w: %s: OpenCV could not decode it (%v)", ErrCorruptImage, format, err)
	}
	im := &Image{mat: mat, Width: w, Height: h, Format: format, Reduction: reduction}
	wantW, wantH := ceilDiv(w, reduction), ceilDiv(h, reduction)
	if mat.Cols() != wantW || mat.Rows() != wantH || mat.Type() != gocv.MatTypeCV8UC3 || !mat.IsContinuous() {
		im.Close()
		return nil, fmt.Errorf("%w: %s header says %dx%d, decoded %dx%d (type %v) at 1/%d", ErrCorruptImage, format, w, h, mat.Cols(), mat.Rows(), mat.Type(), reduction)
	}
	pix, err := mat.DataPtrUint8()
	if err != nil {
		im.Close()
		return nil, fmt.Errorf("%w: %s: %v", ErrCorruptImage, format, err)
	}
	im.Pixels = Packed{Pix: pix, Width: wantW, Height: wantH, Stride: mat.Step(), BytesPerPixel: 3, Order: OrderBGR}
	return im, nil
}

// Reduction is the largest JPEG DCT scale divisor (1, 2, 4 or 8) at which a
// w x h image still has at least as many pixels on each side as p resizes
// it to, so decoding smaller never loses resolution the model would see.
func (p Preprocess) Reduction(w, h int) int {
	rw, rh := p.Width, p.Height
	if p.Resize == ResizeLetter {
		rw, rh = p.letterboxSize(w, h)
	}
	best := 1
	for _, s := range []int{2, 4, 8} {
		if ceilDiv(w, s) >= rw && ceilDiv(h, s) >= rh {
			best = s
		}
	}
	return best
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// jpegComplete reports whether a JPEG's last scan is followed by an
// end-of-image marker: libjpeg decodes a truncated file with a warning and
// grey rows where data is missing, where the Go decoder refused it, and so
// does this check. Inside entropy-coded data 0xFF is always followed by 0x00
// or a restart marker, so FF D9 is the marker itself; the last one must not
// be followed by another scan (FF DA). Scanning from the end finds it in a
// few bytes in a complete file.
func jpegComplete(data []byte) bool {
	end := -1
	for i := len(data) - 2; i >= 0; i-- {
		if data[i] == 0xff && data[i+1] == 0xd9 {
			end = i
			break
		}
	}
	return end > 0 && !bytes.Contains(data[end:], []byte{0xff, 0xda})
}

// DefaultMaxPixels is the image size limit a server uses unless told
// otherwise: sixteen times the model input on each side (a 320x320 model
// takes up to 5120x5120, 26 megapixels; never below 12 megapixels, a
// 4032x3024 phone photo), and no more than an eighth of memoryBytes shared
// by decoders images decoded at once at 4 bytes a pixel, nor MaxImagePixels.
// A model gains nothing from pixels far beyond its input, while a decode's
// memory and time grow with every one of them.
func DefaultMaxPixels(pre Preprocess, memoryBytes int64, decoders int) int64 {
	byModel := max(int64(256)*int64(pre.Width)*int64(pre.Height), 12<<20)
	limit := min(byModel, int64(MaxImagePixels))
	if memoryBytes > 0 && decoders > 0 {
		limit = min(limit, memoryBytes/8/int64(decoders)/4)
	}
	return max(limit, 1)
}

// ApplyImage writes a decoded Image into dst like Apply, mapping boxes back
// to the original size even when the pixels were decoded at a reduced scale.
func (p Preprocess) ApplyImage(im *Image, dst []float32) (Transform, error) {
	if im == nil {
		return Transform{}, fmt.Errorf("infer: preprocess: nil image")
	}
	return p.applyScaled(im.Pixels, im.Width, im.Height, dst)
}
