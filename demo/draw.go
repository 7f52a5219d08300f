package demo

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"sort"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/infer"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// drawScoreThreshold is the lowest score drawn: evaluation keeps scores
// down to 0.05, which would bury the pictures.
const drawScoreThreshold = 0.3

// maxDrawn bounds the boxes drawn per panel.
const maxDrawn = 15

// panelColumn is one column of the detections figure.
type panelColumn struct {
	title string
	// dets by image id; nil for the ground-truth column.
	dets map[int64][]evaluate.Detection
}

// detectionsByImage reads a results file and groups its detections.
func detectionsByImage(path string) (map[int64][]evaluate.Detection, error) {
	dets, err := evaluate.ReadResults(path)
	if err != nil {
		return nil, err
	}
	out := map[int64][]evaluate.Detection{}
	for _, d := range dets {
		out[d.ImageID] = append(out[d.ImageID], d)
	}
	for id := range out {
		list := out[id]
		sort.SliceStable(list, func(i, j int) bool { return list[i].Score > list[j].Score })
	}
	return out, nil
}

// drawDetections writes a grid: one row per picked test image, one column
// for the ground truth and one per model.
func drawDetections(path string, ds *dataset.Dataset, picks []dataset.Image, cols []panelColumn) error {
	if len(picks) == 0 {
		return fmt.Errorf("no test images to draw")
	}
	// Panels are at least 256 pixels wide so labels stay readable.
	scale := 1
	for picks[0].Width*scale < 256 {
		scale++
	}
	pw, ph := picks[0].Width*scale, picks[0].Height*scale
	for _, im := range picks {
		pw, ph = max(pw, im.Width*scale), max(ph, im.Height*scale)
	}
	const pad, header = 6, 20
	W := len(cols)*(pw+pad) + pad
	H := header + len(picks)*(ph+pad) + pad
	canvas := image.NewRGBA(image.Rect(0, 0, W, H))
	xdraw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.RGBA{250, 250, 250, 255}), image.Point{}, xdraw.Src)
	for c, col := range cols {
		drawText(canvas, pad+c*(pw+pad)+2, 14, col.title, color.RGBA{20, 20, 20, 255}, nil)
	}
	for r, im := range picks {
		data, err := os.ReadFile(im.Path)
		if err != nil {
			return err
		}
		src, err := infer.DecodeImage(data)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Path, err)
		}
		y0 := header + r*(ph+pad)
		for c, col := range cols {
			x0 := pad + c*(pw+pad)
			dst := image.Rect(x0, y0, x0+im.Width*scale, y0+im.Height*scale)
			xdraw.ApproxBiLinear.Scale(canvas, dst, src, src.Bounds(), xdraw.Src, nil)
			sub := canvas.SubImage(dst).(*image.RGBA)
			if col.dets == nil {
				for _, o := range im.Objects {
					if o.Crowd {
						continue
					}
					drawBox(sub, dst.Min, o.Box, float64(scale), classColor(o.Class), ds.Categories[o.Class].Name)
				}
				continue
			}
			n := 0
			for _, d := range col.dets[im.ID] {
				if d.Score < drawScoreThreshold || n >= maxDrawn {
					break
				}
				idx, ok := ds.CategoryIndex(d.CategoryID)
				if !ok {
					continue
				}
				drawBox(sub, dst.Min, d.Box(), float64(scale), classColor(idx), fmt.Sprintf("%s %.2f", ds.Categories[idx].Name, d.Score))
				n++
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, canvas); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// drawBox outlines b (source pixels, times scale) with a 2-pixel line and
// writes its label above it, inside the panel.
func drawBox(img *image.RGBA, origin image.Point, b dataset.Box, scale float64, c color.RGBA, label string) {
	r := image.Rect(origin.X+int(b.X1*scale), origin.Y+int(b.Y1*scale), origin.X+int(b.X2*scale), origin.Y+int(b.Y2*scale)).Intersect(img.Bounds())
	if r.Empty() {
		return
	}
	for t := 0; t < 2; t++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			setPixel(img, x, r.Min.Y+t, c)
			setPixel(img, x, r.Max.Y-1-t, c)
		}
		for y := r.Min.Y; y < r.Max.Y; y++ {
			setPixel(img, r.Min.X+t, y, c)
			setPixel(img, r.Max.X-1-t, y, c)
		}
	}
	ty := r.Min.Y - 3
	if ty-10 < img.Bounds().Min.Y {
		ty = r.Min.Y + 12
	}
	drawText(img, r.Min.X+1, ty, label, color.RGBA{255, 255, 255, 255}, &c)
}

func setPixel(img *image.RGBA, x, y int, c color.RGBA) {
	if (image.Point{x, y}).In(img.Bounds()) {
		img.SetRGBA(x, y, c)
	}
}

// drawText writes s with its baseline at (x, y), on a filled background
// when bg is set.
func drawText(img *image.RGBA, x, y int, s string, fg color.RGBA, bg *color.RGBA) {
	face := basicfont.Face7x13
	d := &font.Drawer{Dst: img, Src: image.NewUniform(fg), Face: face, Dot: fixed.P(x, y)}
	if bg != nil {
		w := d.MeasureString(s).Ceil()
		rect := image.Rect(x-1, y-11, x+w+1, y+3).Intersect(img.Bounds())
		xdraw.Draw(img, rect, image.NewUniform(*bg), image.Point{}, xdraw.Src)
	}
	d.DrawString(s)
}

// pickImages chooses n test images spread over the split, preferring ones
// with several objects so the pictures show something.
func pickImages(ds *dataset.Dataset, n int) []dataset.Image {
	if n <= 0 || len(ds.Images) == 0 {
		return nil
	}
	var busy []dataset.Image
	for _, im := range ds.Images {
		if len(im.Objects) >= 3 {
			busy = append(busy, im)
		}
	}
	if len(busy) < n {
		busy = ds.Images
	}
	n = min(n, len(busy))
	out := make([]dataset.Image, n)
	for i := range out {
		out[i] = busy[i*len(busy)/n]
	}
	return out
}
