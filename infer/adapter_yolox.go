package infer

import (
	"fmt"
	"math"
)

// YOLOX as exported by the upstream project (and gidedge's YOLOX-like test
// model): one output [1, N, 5+K] whose rows are every position of the
// stride-8, 16 and 32 grids, level after level, row-major over (y, x), each
// the raw box regression (x, y offsets in cells, log width and height in
// cells), the sigmoid objectness and K sigmoid class scores. The input is
// BGR in 0–255, not normalised, letterboxed with 114.
var yoloxStrides = []int{8, 16, 32}

type yoloxAdapter struct {
	pre     Preprocess
	classes []string
	output  string
	grids   [][2]int // width, height per stride
}

func matchYOLOX(sig Signature) (Adapter, bool, error) {
	if len(sig.Outputs) != 1 || len(sig.Inputs) != 1 {
		return nil, false, nil
	}
	out := sig.Outputs[0]
	if len(out.Shape) != 3 || out.Shape[2] < 6 {
		return nil, false, nil
	}
	in, h, w, err := imageInput(sig)
	if err != nil || h == 0 || w == 0 || h%32 != 0 || w%32 != 0 {
		return nil, false, nil
	}
	a := &yoloxAdapter{output: out.Name, pre: Preprocess{
		Width: w, Height: h, Layout: LayoutNCHW, ChannelOrder: OrderBGR, Resize: ResizeLetter,
		PadValue: 114, PixelScale: 1, Std: [3]float32{1, 1, 1},
	}}
	rows := 0
	for _, s := range yoloxStrides {
		a.grids = append(a.grids, [2]int{w / s, h / s})
		rows += (w / s) * (h / s)
	}
	if out.Shape[1] != int64(rows) {
		return nil, false, nil // another single-output model
	}
	if len(in.Shape) == 4 && in.Shape[0] > 1 {
		return nil, true, fmt.Errorf("input %q has batch %d, want 1", in.Name, in.Shape[0])
	}
	a.classes = classNames(int(out.Shape[2]) - 5)
	return a, true, nil
}

func (a *yoloxAdapter) Name() string           { return "yolox" }
func (a *yoloxAdapter) Preprocess() Preprocess { return a.pre }
func (a *yoloxAdapter) ClassNames() []string   { return a.classes }

// Defaults follow the YOLOX demo: score 0.3, NMS IoU 0.45.
func (a *yoloxAdapter) Defaults() Params {
	return Params{ScoreThreshold: 0.3, IoUThreshold: 0.45, MaxDetections: 100}
}

// Decode reads each row's box as YOLOX does: centre (x + dx, y + dy) and
// size (e^dw, e^dh) in cells of its stride; the score of class c is
// objectness × class probability.
func (a *yoloxAdapter) Decode(out Outputs, p Params, dst []Detection) ([]Detection, error) {
	cols := 5 + len(a.classes)
	rows := 0
	for _, g := range a.grids {
		rows += g[0] * g[1]
	}
	t, err := out.get(a.output, 1, int64(rows), int64(cols))
	if err != nil {
		return dst, err
	}
	w, h := float32(a.pre.Width), float32(a.pre.Height)
	r := 0
	for li, g := range a.grids {
		s := float32(yoloxStrides[li])
		for y := range g[1] {
			for x := range g[0] {
				row := t.Data[r*cols : (r+1)*cols]
				r++
				obj := row[4]
				if obj <= p.ScoreThreshold {
					continue // every class score is below objectness
				}
				cx, cy := (float32(x)+row[0])*s, (float32(y)+row[1])*s
				bw := float32(math.Exp(float64(min(row[2], 10)))) * s
				bh := float32(math.Exp(float64(min(row[3], 10)))) * s
				box := [4]float32{clamp(cx-bw/2, 0, w), clamp(cy-bh/2, 0, h), clamp(cx+bw/2, 0, w), clamp(cy+bh/2, 0, h)}
				for c, cls := range row[5:] {
					if sc := obj * cls; sc > p.ScoreThreshold {
						dst = append(dst, Detection{Box: box, Score: sc, Class: c})
					}
				}
			}
		}
	}
	return dst, nil
}
