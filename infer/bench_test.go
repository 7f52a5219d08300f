package infer

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gidedge/gidedge/internal/sharedtest"
)

// The per-request work around the model for a 640x480 COCO JPEG and a
// 320x320 letterbox: go test -run XXX -bench . ./infer

func benchJPEG(b *testing.B) []byte {
	data, err := os.ReadFile(filepath.Join(sharedtest.Dir(b), "data", "coco128", "images", "000000000009.jpg"))
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// BenchmarkGoDecodeAndApply is the path before: Go's decoder at full size,
// YCbCr to RGBA, bilinear resize.
func BenchmarkGoDecodeAndApply(b *testing.B) {
	data := benchJPEG(b)
	pre := nanodetLikePreprocess()
	dst := make([]float32, pre.TensorLen())
	for b.Loop() {
		img, err := DecodeImage(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pre.Apply(img, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeForAndApply is the path now: libjpeg-turbo at 1/2 scale,
// then one pass into the tensor.
func BenchmarkDecodeForAndApply(b *testing.B) {
	data := benchJPEG(b)
	pre := nanodetLikePreprocess()
	dst := make([]float32, pre.TensorLen())
	for b.Loop() {
		im, err := DecodeFor(data, pre, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := pre.ApplyImage(im, dst); err != nil {
			b.Fatal(err)
		}
		im.Close()
	}
}

func BenchmarkDecodeFor(b *testing.B) {
	data := benchJPEG(b)
	pre := nanodetLikePreprocess()
	for b.Loop() {
		im, err := DecodeFor(data, pre, 0)
		if err != nil {
			b.Fatal(err)
		}
		im.Close()
	}
}

func BenchmarkJPEGComplete(b *testing.B) {
	data := benchJPEG(b)
	for b.Loop() {
		if !jpegComplete(data) {
			b.Fatal("incomplete")
		}
	}
}
