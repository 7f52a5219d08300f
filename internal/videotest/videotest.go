// Package videotest writes the small video files that camera tests feed to
// gidedge serve --camera: a COCO128 person, as an MJPG .avi, through gocv.
package videotest

import (
	"image"
	"os"
	"path/filepath"
	"testing"

	"gocv.io/x/gocv"

	"github.com/gidedge/gidedge/internal/sharedtest"
)

// Width and Height are the frame size of the videos WritePersonVideo writes.
const (
	Width  = 480
	Height = 640
)

// WritePersonVideo writes frames of coco128 image 36 (a person, resized to
// Width x Height) as an MJPG .avi at 10 fps, atomically: a camera never sees
// a half-written file.
func WritePersonVideo(t testing.TB, path string, frames int) {
	t.Helper()
	src := gocv.IMRead(filepath.Join(sharedtest.Dir(t), "data", "coco128", "images", "000000000036.jpg"), gocv.IMReadColor)
	defer src.Close()
	if src.Empty() {
		t.Fatal("videotest: gocv could not read the test image")
	}
	frame := gocv.NewMat()
	defer frame.Close()
	gocv.Resize(src, &frame, image.Pt(Width, Height), 0, 0, gocv.InterpolationLinear)
	tmp := filepath.Join(filepath.Dir(path), "partial-"+filepath.Base(path))
	vw, err := gocv.VideoWriterFile(tmp, "MJPG", 10, Width, Height, true)
	if err != nil {
		t.Fatal(err)
	}
	if !vw.IsOpened() {
		t.Fatal("videotest: gocv VideoWriter did not open (is OpenCV built with a video backend?)")
	}
	for range frames {
		if err := vw.Write(frame); err != nil {
			t.Fatal(err)
		}
	}
	if err := vw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
