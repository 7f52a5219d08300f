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

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/atomicfile"
	"github.com/gidedge/gidedge/internal/overlay"
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
		overlay.Text(canvas, pad+c*(pw+pad)+2, 14, col.title, color.RGBA{20, 20, 20, 255})
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
					drawBox(sub, dst.Min, o.Box, float64(scale), o.Class, ds.Categories[o.Class].Name)
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
				drawBox(sub, dst.Min, d.Box(), float64(scale), idx, fmt.Sprintf("%s %.2f", ds.Categories[idx].Name, d.Score))
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

// drawBox outlines b (source pixels, times scale, inside the panel at
// origin) with a 2-pixel line in its class's colour and labels it.
func drawBox(panel *image.RGBA, origin image.Point, b dataset.Box, scale float64, class int, label string) {
	r := overlay.Rect([4]float64{b.X1 * scale, b.Y1 * scale, b.X2 * scale, b.Y2 * scale}).Add(origin).Intersect(panel.Bounds())
	if r.Empty() {
		return
	}
	c := overlay.ClassColor(class)
	overlay.Box(panel, r, c, 2)
	overlay.Label(panel, r, label, c)
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
