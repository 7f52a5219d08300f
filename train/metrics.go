package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/internal/atomicfile"
)

// Record types in metrics.jsonl.
const (
	RecordTrain = "train"
	RecordEval  = "eval"
)

// Record is one line of metrics.jsonl: the average of LogEvery training
// steps, or one evaluation.
type Record struct {
	Type  string    `json:"type"`
	Time  time.Time `json:"time"`
	Epoch int       `json:"epoch"` // 1-based epoch the record belongs to
	// Step is the global step count when the record was made.
	Step int `json:"step"`
	// Training records. Steps is how many steps the record averages:
	// LogEvery, fewer at the end of an epoch or right after a resume.
	Steps        int                `json:"steps,omitempty"`
	LR           float64            `json:"lr,omitempty"`
	Loss         float64            `json:"loss,omitempty"`
	Parts        map[string]float64 `json:"parts,omitempty"`
	StepMS       float64            `json:"step_ms,omitempty"`
	WaitMS       float64            `json:"data_wait_ms,omitempty"`
	ImagesPerSec float64            `json:"images_per_s,omitempty"`
	// Evaluation records.
	Split   string            `json:"split,omitempty"`
	AP      float64           `json:"AP,omitempty"`
	AP50    float64           `json:"AP50,omitempty"`
	Metrics *evaluate.Metrics `json:"metrics,omitempty"`
	EvalSec float64           `json:"eval_s,omitempty"`
}

// appendRecord adds one line to the JSONL file and syncs it.
func appendRecord(path string, r Record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("train: encode metrics record: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("train: metrics: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("train: metrics %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("train: metrics %s: %w", path, err)
	}
	return f.Close()
}

// ReadRecords parses metrics.jsonl; a missing file is no records.
func ReadRecords(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("train: metrics: %w", err)
	}
	var out []Record
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("train: metrics %s line %d: %w", path, line, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// truncateRecords drops the records made after step (those of steps a
// resumed run will redo) and rewrites the file atomically.
func truncateRecords(path string, step int) error {
	recs, err := ReadRecords(path)
	if err != nil || recs == nil {
		return err
	}
	var buf bytes.Buffer
	for _, r := range recs {
		if r.Step > step {
			continue
		}
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("train: encode metrics record: %w", err)
		}
		buf.Write(append(line, '\n'))
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// PlotMetrics draws a run's metrics.jsonl to a PNG: the loss and its parts
// against the step, and validation AP and AP50 against the step.
func PlotMetrics(jsonlPath, pngPath, title string) error {
	recs, err := ReadRecords(jsonlPath)
	if err != nil {
		return err
	}
	lossPlot := plot.New()
	lossPlot.Title.Text = title + ": training loss"
	lossPlot.X.Label.Text = "step"
	lossPlot.Y.Label.Text = "loss"
	lossPlot.Add(plotter.NewGrid())
	apPlot := plot.New()
	apPlot.Title.Text = "validation"
	apPlot.X.Label.Text = "step"
	apPlot.Y.Label.Text = "AP"
	apPlot.Y.Min, apPlot.Y.Max = 0, 1
	apPlot.Add(plotter.NewGrid())

	series := map[string]plotter.XYs{}
	var ap, ap50 plotter.XYs
	for _, r := range recs {
		switch r.Type {
		case RecordTrain:
			series["loss"] = append(series["loss"], plotter.XY{X: float64(r.Step), Y: r.Loss})
			for k, v := range r.Parts {
				series[k] = append(series[k], plotter.XY{X: float64(r.Step), Y: v})
			}
		case RecordEval:
			ap = append(ap, plotter.XY{X: float64(r.Step), Y: r.AP})
			ap50 = append(ap50, plotter.XY{X: float64(r.Step), Y: r.AP50})
		}
	}
	names := make([]string, 0, len(series))
	for k := range series {
		if k != "loss" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	names = append([]string{"loss"}, names...)
	addLine := func(p *plot.Plot, name string, xys plotter.XYs, i int) error {
		if len(xys) == 0 {
			return nil
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("train: plot %s: %w", name, err)
		}
		l.Color = plotutil.Color(i)
		l.Width = vg.Points(1.5)
		p.Add(l)
		if len(xys) < 40 {
			s, err := plotter.NewScatter(xys)
			if err == nil {
				s.Color = plotutil.Color(i)
				p.Add(s)
			}
		}
		p.Legend.Add(name, l)
		return nil
	}
	for i, k := range names {
		if err := addLine(lossPlot, k, series[k], i); err != nil {
			return err
		}
	}
	if err := addLine(apPlot, "AP@[.5:.95]", ap, 0); err != nil {
		return err
	}
	if err := addLine(apPlot, "AP50", ap50, 1); err != nil {
		return err
	}
	lossPlot.Legend.Top = true
	apPlot.Legend.Top = true
	apPlot.Legend.Left = true

	img := vgimg.New(8*vg.Inch, 8*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	plots := [][]*plot.Plot{{lossPlot}, {apPlot}}
	canvases := plot.Align(plots, tiles, dc)
	lossPlot.Draw(canvases[0][0])
	apPlot.Draw(canvases[1][0])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return fmt.Errorf("train: plot %s: %w", pngPath, err)
	}
	return atomicfile.WriteFile(pngPath, buf.Bytes())
}

// writeJSONAtomic writes v as indented JSON.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("train: encode %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}
