package demo

import (
	"bytes"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/gidedge/gidedge/train"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// series is one named curve.
type series struct {
	name   string
	xys    plotter.XYs
	dashed bool
	color  int
}

// curves are the training curves of one run folder: the detection loss
// (the total minus distillation terms, so every run is on the same scale),
// each distillation term (GID only) and validation AP per epoch.
type curves struct {
	detLoss, valAP plotter.XYs
	distParts      map[string]plotter.XYs
}

// isDistillPart reports whether a logged loss part is a distillation term.
func isDistillPart(name string) bool {
	return strings.HasPrefix(name, "gid_") || strings.HasPrefix(name, "kd_")
}

// readCurves reads a run's metrics.jsonl.
func readCurves(dir string) (curves, error) {
	recs, err := train.ReadRecords(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		return curves{}, err
	}
	c := curves{distParts: map[string]plotter.XYs{}}
	for _, r := range recs {
		switch r.Type {
		case train.RecordTrain:
			dist := 0.0
			for k, v := range r.Parts {
				if isDistillPart(k) {
					dist += v
					c.distParts[k] = append(c.distParts[k], plotter.XY{X: float64(r.Step), Y: v})
				}
			}
			c.detLoss = append(c.detLoss, plotter.XY{X: float64(r.Step), Y: r.Loss - dist})
		case train.RecordEval:
			c.valAP = append(c.valAP, plotter.XY{X: float64(r.Epoch), Y: r.AP})
		}
	}
	return c, nil
}

// linePlot draws the series on one plot.
func linePlot(title, xLabel, yLabel string, ss []series, yMin, yMax float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	if yMax > yMin {
		p.Y.Min, p.Y.Max = yMin, yMax
	}
	p.Add(plotter.NewGrid())
	for _, s := range ss {
		if len(s.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return nil, fmt.Errorf("plot %s: %s: %w", title, s.name, err)
		}
		l.Color = plotutil.Color(s.color)
		l.Width = vg.Points(1.6)
		if s.dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		if len(s.xys) <= 30 {
			if sc, err := plotter.NewScatter(s.xys); err == nil {
				sc.Color = plotutil.Color(s.color)
				sc.Radius = vg.Points(2.2)
				p.Add(sc)
			}
		}
		p.Legend.Add(s.name, l)
	}
	p.Legend.Top = true
	return p, nil
}

// savePlots writes plots stacked vertically (one column) to a PNG.
func savePlots(path string, width, height vg.Length, plots ...*plot.Plot) error {
	img := vgimg.New(width, height)
	dc := draw.New(img)
	rows := make([][]*plot.Plot, len(plots))
	for i, p := range plots {
		rows[i] = []*plot.Plot{p}
	}
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 6,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(rows, tiles, dc)
	for i, p := range plots {
		p.Draw(canvases[i][0])
	}
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// plotTraining writes the loss curves of the three runs (and the
// distillation terms of the one that has them) and their validation AP.
func plotTraining(lossPath, apPath string, runs []namedRun) error {
	var loss, dist, ap []series
	for i, r := range runs {
		c, err := readCurves(r.dir)
		if err != nil {
			return err
		}
		loss = append(loss, series{name: r.name, xys: c.detLoss, color: i})
		ap = append(ap, series{name: r.name, xys: c.valAP, color: i})
		names := make([]string, 0, len(c.distParts))
		for k := range c.distParts {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			dist = append(dist, series{name: r.name + ": " + k, xys: c.distParts[k], color: len(dist)})
		}
	}
	lp, err := linePlot("Detection loss (classification + box, mean over logged steps)", "step", "loss", loss, 0, 0)
	if err != nil {
		return err
	}
	lp.Y.Min = 0
	plots := []*plot.Plot{lp}
	height := 4.5 * vg.Inch
	if len(dist) > 0 {
		dp, err := linePlot("Distillation terms, weighted as added to the loss", "step", "loss", dist, 0, 0)
		if err != nil {
			return err
		}
		dp.Y.Min = 0
		plots = append(plots, dp)
		height = 8 * vg.Inch
	}
	if err := savePlots(lossPath, 8*vg.Inch, height, plots...); err != nil {
		return err
	}
	top := 0.05
	for _, s := range ap {
		for _, xy := range s.xys {
			top = max(top, xy.Y)
		}
	}
	pp, err := linePlot("Validation mAP@[.5:.95] after each epoch", "epoch", "AP", ap, 0, min(1, top*1.15))
	if err != nil {
		return err
	}
	pp.Legend.Left = true
	return savePlots(apPath, 8*vg.Inch, 4*vg.Inch, pp)
}

type namedRun struct{ name, dir string }

// plotPR writes the class-averaged precision-recall curves at IoU 0.5.
func plotPR(path string, evals []ModelEval, names []string) error {
	var ss []series
	for i, e := range evals {
		xys := make(plotter.XYs, 0, len(e.PR50))
		for r, v := range e.PR50 {
			if v >= 0 {
				xys = append(xys, plotter.XY{X: float64(r) / float64(len(e.PR50)-1), Y: v})
			}
		}
		ss = append(ss, series{name: fmt.Sprintf("%s (AP50 %.3f)", names[i], e.AP50), xys: xys, color: i, dashed: i >= 3})
	}
	p, err := linePlot("Precision-recall on the test split, IoU 0.5, mean over classes", "recall", "precision (interpolated)", ss, 0, 1.02)
	if err != nil {
		return err
	}
	p.X.Min, p.X.Max = 0, 1
	p.Legend.Top = true
	p.Legend.Left = false
	return savePlots(path, 8*vg.Inch, 5*vg.Inch, p)
}
