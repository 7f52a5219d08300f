package evaluate

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// maxPlottedClasses bounds the per-class curves on one plot; beyond it only
// the averages are drawn (80 COCO classes would be unreadable).
const maxPlottedClasses = 12

// PlotPR draws the interpolated precision-recall curves of m to a PNG (or
// SVG/PDF, from the extension), atomically: the class average at IoU 0.5
// and 0.75, and each class at IoU 0.5 when there are at most 12 classes.
func PlotPR(path string, m *Metrics, title string) error {
	format := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	switch format {
	case "png", "svg", "pdf":
	default:
		return fmt.Errorf("evaluate: plot %s: extension %q, want .png, .svg or .pdf", path, filepath.Ext(path))
	}
	if len(m.Precision50) != len(recallThresholds) {
		return fmt.Errorf("evaluate: plot %s: the metrics carry no precision curves (%d points, want %d; curves are not kept in JSON)",
			path, len(m.Precision50), len(recallThresholds))
	}
	p := plot.New()
	if title == "" {
		title = "Precision-recall"
	}
	p.Title.Text = fmt.Sprintf("%s (AP %.3f, AP50 %.3f)", title, m.AP, m.AP50)
	p.X.Label.Text = "recall"
	p.Y.Label.Text = "precision (interpolated)"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1.02
	// Precision falls from the top left to the bottom right, so the bottom
	// left is usually free for the legend.
	p.Legend.Top = false
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.YOffs = vg.Points(8)
	p.Add(plotter.NewGrid())

	add := func(name string, curve []float64, i int, width vg.Length, dashed bool) error {
		if len(curve) != len(recallThresholds) {
			return nil
		}
		xys := make(plotter.XYs, 0, len(curve))
		for r, v := range curve {
			if v < 0 {
				continue
			}
			xys = append(xys, plotter.XY{X: recallThresholds[r], Y: v})
		}
		if len(xys) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("evaluate: plot %s: %w", path, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = width
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	if err := add(fmt.Sprintf("all classes, IoU 0.50 (AP50 %.3f)", m.AP50), m.Precision50, 0, vg.Points(2.5), false); err != nil {
		return err
	}
	if err := add(fmt.Sprintf("all classes, IoU 0.75 (AP75 %.3f)", m.AP75), m.Precision75, 1, vg.Points(2.5), true); err != nil {
		return err
	}
	if len(m.PerClass) <= maxPlottedClasses {
		for k, c := range m.PerClass {
			if err := add(fmt.Sprintf("%s, IoU 0.50 (AP50 %.3f)", c.Name, c.AP50), c.Precision50, k+2, vg.Points(1), false); err != nil {
				return err
			}
		}
	}
	wt, err := p.WriterTo(7*vg.Inch, 5*vg.Inch, format)
	if err != nil {
		return fmt.Errorf("evaluate: plot %s: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return fmt.Errorf("evaluate: plot %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}
