package distill

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/internal/atomicfile"
	"github.com/gidedge/gidedge/internal/overlay"
	"github.com/gidedge/gidedge/models"
)

// GI drawing colours, by type; ground-truth boxes are drawn first, in cyan.
var (
	colorPositive = color.RGBA{R: 40, G: 210, B: 40, A: 255}
	colorSemi     = color.RGBA{R: 255, G: 170, A: 255}
	colorNegative = color.RGBA{R: 235, G: 40, B: 40, A: 255}
	colorGT       = color.RGBA{G: 200, B: 255, A: 255}
)

// GIColor returns the colour a GI of type t is drawn in.
func GIColor(t GIType) color.RGBA {
	switch t {
	case GIPositive:
		return colorPositive
	case GISemi:
		return colorSemi
	}
	return colorNegative
}

// DrawGIs renders image i of the normalised batch x [N, 3, H, W] (input as
// the config's Input says) with its ground-truth boxes (thin cyan) and its
// GIs coloured by type (green positive, orange semi-positive, red negative);
// a GI whose box came from the teacher is drawn two pixels thick, one from
// the student one pixel.
func DrawGIs(x *engine.Tensor, i int, in models.InputConfig, targets []dataset.Target, gis []GI) *image.RGBA {
	h, w := x.Dim(2), x.Dim(3)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	data := x.ToHost()[i*3*h*w : (i+1)*3*h*w]
	for y := 0; y < h; y++ {
		for xx := 0; xx < w; xx++ {
			var px [3]uint8
			for c := 0; c < 3; c++ {
				v := (data[(c*h+y)*w+xx]*in.Std[c] + in.Mean[c]) * 255
				px[c] = uint8(min(max(v+0.5, 0), 255))
			}
			img.SetRGBA(xx, y, color.RGBA{R: px[0], G: px[1], B: px[2], A: 255})
		}
	}
	for _, t := range targets {
		overlay.Box(img, overlay.Rect([4]float64{t.Box.X1, t.Box.Y1, t.Box.X2, t.Box.Y2}), colorGT, 1)
	}
	for j := len(gis) - 1; j >= 0; j-- { // best GI drawn last, on top
		thick := 1
		if gis[j].FromTeacher {
			thick = 2
		}
		overlay.Box(img, overlay.Rect(gis[j].Box), GIColor(gis[j].Type), thick)
	}
	return img
}

// writePNG encodes img to path atomically.
func writePNG(path string, img image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("distill: encode %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}
