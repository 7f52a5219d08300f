package quantize

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// Plot draws SQNR along the graph, with upstream error and layer alone, and
// marks the first jump, to a PNG (or SVG/PDF, from the extension), written
// atomically.
func (ins *Inspection) Plot(path, title string) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	switch format {
	case "png", "svg", "pdf":
	default:
		return fmt.Errorf("quantize: plot %s: extension %q, want .png, .svg or .pdf", path, filepath.Ext(path))
	}
	p := plot.New()
	p.Title.Text = title + ": SQNR of every quantized tensor along the graph"
	p.X.Label.Text = "quantized tensor (graph order)"
	p.Y.Label.Text = "SQNR (dB)"
	p.Add(plotter.NewGrid())
	up := make(plotter.XYs, len(ins.Tensors))
	alone := make(plotter.XYs, len(ins.Tensors))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range ins.Tensors {
		up[i] = plotter.XY{X: float64(s.Index), Y: s.SQNR}
		alone[i] = plotter.XY{X: float64(s.Index), Y: s.SQNRAlone}
		lo = math.Min(lo, math.Min(s.SQNR, s.SQNRAlone))
		hi = math.Max(hi, math.Max(s.SQNR, s.SQNRAlone))
	}
	hi = math.Min(hi, 70) // exact tensors (max SQNR) would flatten the rest
	for i, series := range []struct {
		name string
		xys  plotter.XYs
	}{{"with upstream error", up}, {"layer alone (fp32 inputs)", alone}} {
		l, s, err := plotter.NewLinePoints(series.xys)
		if err != nil {
			return fmt.Errorf("quantize: plot %s: %w", path, err)
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		s.Shape = draw.CircleGlyph{}
		s.Radius = vg.Points(1.5)
		p.Add(l, s)
		p.Legend.Add(series.name, l)
	}
	if ins.FirstJump >= 0 {
		x := float64(ins.Tensors[ins.FirstJump].Index)
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
		if err != nil {
			return fmt.Errorf("quantize: plot %s: %w", path, err)
		}
		l.Color = plotutil.Color(2)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add("first jump: "+shorten(ins.Tensors[ins.FirstJump].Name, 40), l)
	}
	p.Y.Min, p.Y.Max = math.Floor(lo/5)*5, math.Ceil(hi/5)*5
	p.Legend.Top = true
	var buf bytes.Buffer
	w, err := p.WriterTo(12*vg.Inch, 5*vg.Inch, format)
	if err != nil {
		return fmt.Errorf("quantize: plot %s: %w", path, err)
	}
	if _, err := w.WriteTo(&buf); err != nil {
		return fmt.Errorf("quantize: plot %s: %w", path, err)
	}
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return fmt.Errorf("quantize: plot: %w", err)
	}
	return nil
}
