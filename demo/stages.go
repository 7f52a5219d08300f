package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/distill"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/internal/human"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/quantize"
	"github.com/gidedge/gidedge/train"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// Stage ids, in order.
const (
	StageSynth    = "synth"
	StageTeacher  = "teacher"
	StageBaseline = "baseline"
	StageGID      = "gid"
	StageEvaluate = "evaluate"
	StageExport   = "export"
	StageLatency  = "latency"
	StageReport   = "report"
)

// reportVersion is part of the report stage's key: a new layout rewrites
// reports of earlier runs.
const reportVersion = 1

// keyFile, inside a training run folder, holds the key of the stage that
// started the run, so a later invocation resumes only its own run.
const keyFile = ".demo-key"

// SynthResult describes the generated data set.
type SynthResult struct {
	Dir      string         `json:"dir"`
	Images   int            `json:"images"`
	Objects  int            `json:"objects"`
	Train    int            `json:"train"`
	Val      int            `json:"val"`
	Test     int            `json:"test"`
	Size     int            `json:"size"`
	Preset   string         `json:"preset"`
	PerClass map[string]int `json:"per_class"`
	Classes  []string       `json:"classes"`
}

// TrainResult describes one trained detector.
type TrainResult struct {
	Role       string  `json:"role"`
	Config     string  `json:"config"`
	Backbone   string  `json:"backbone"`
	Dir        string  `json:"dir"`
	Checkpoint string  `json:"checkpoint"` // best.safetensors
	Params     int     `json:"params"`
	GFLOPs     float64 `json:"gflops"`
	ImgSize    int     `json:"img_size"`
	Epochs     int     `json:"epochs"`
	Steps      int     `json:"steps"`
	Batch      int     `json:"batch"`
	BestValAP  float64 `json:"best_val_ap"`
	BestEpoch  int     `json:"best_epoch"`
	// TrainSeconds is the time in training steps over the whole run,
	// resumed parts included; StepMS its mean per step.
	TrainSeconds float64 `json:"train_seconds"`
	ImagesPerSec float64 `json:"images_per_s"`
	StepMS       float64 `json:"step_ms"`
	// Method describes the distillation (GID only).
	Method      string  `json:"method,omitempty"`
	GIsPerImage float64 `json:"gis_per_image,omitempty"`
}

// ModelEval is one model scored on the test split.
type ModelEval struct {
	Role     string             `json:"role"`
	Name     string             `json:"name"`
	Source   string             `json:"source"`  // checkpoint or ONNX file
	Results  string             `json:"results"` // COCO results JSON
	AP       float64            `json:"AP"`
	AP50     float64            `json:"AP50"`
	AP75     float64            `json:"AP75"`
	APSmall  float64            `json:"AP_small"`
	APMedium float64            `json:"AP_medium"`
	APLarge  float64            `json:"AP_large"`
	AR100    float64            `json:"AR100"`
	PerClass []evaluate.ClassAP `json:"per_class"`
	// PR50 is the class-averaged interpolated precision at the 101 COCO
	// recall points, IoU 0.5 (-1 where undefined).
	PR50         []float64 `json:"pr50"`
	Detections   int       `json:"detections"`
	Seconds      float64   `json:"seconds"`
	ImagesPerSec float64   `json:"images_per_s"`
}

// EvalResult holds the engine evaluation of the three detectors.
type EvalResult struct {
	Split    string    `json:"split"`
	Images   int       `json:"images"`
	Objects  int       `json:"objects"`
	Teacher  ModelEval `json:"teacher"`
	Baseline ModelEval `json:"baseline"`
	GID      ModelEval `json:"gid"`
}

// ExportResult describes the ONNX and INT8 files and their accuracy.
type ExportResult struct {
	FP32Path       string         `json:"fp32_path"`
	FP32Bytes      int64          `json:"fp32_bytes"`
	Opset          int            `json:"opset"`
	Nodes          int            `json:"nodes"`
	FoldedBN       int            `json:"folded_batch_norms"`
	ParityWorst    float64        `json:"parity_worst_relative"`
	ParityOutput   string         `json:"parity_worst_output"`
	ParityTol      float64        `json:"parity_tolerance"`
	ORTVersion     string         `json:"onnxruntime_version"`
	INT8Path       string         `json:"int8_path"`
	INT8Bytes      int64          `json:"int8_bytes"`
	CalibImages    int            `json:"calib_images"`
	CalibMethod    string         `json:"calib_method"`
	Activations    string         `json:"activations"`
	PerChannel     bool           `json:"per_channel"`
	QuantizedOps   map[string]int `json:"quantized_ops"`
	FloatOps       map[string]int `json:"float_ops,omitempty"`
	ORTOps         map[string]int `json:"ort_ops,omitempty"`
	CosineMin      float64        `json:"cosine_min"`
	QuantizeNotes  []string       `json:"quantize_notes,omitempty"`
	FP32Eval       ModelEval      `json:"fp32_eval"`
	INT8Eval       ModelEval      `json:"int8_eval"`
	QuantizeSecond float64        `json:"quantize_seconds"`
}

// stages lists the pipeline with everything each stage needs.
func (r *runner) stages() []*stage {
	p := r.plan
	res := r.res
	ps := r.paths
	g := cmdPath
	return []*stage{
		{
			id: StageSynth, title: "synthetic data set (dataset/synth)",
			settings: func() any {
				return struct {
					Preset            synth.Preset
					Images, Size      int
					ValFrac, TestFrac float64
					Seed              uint64
				}{p.Preset, p.Images, p.Size, p.ValFrac, p.TestFrac, p.Seed}
			},
			result: &res.Synth,
			run:    r.runSynth,
			commands: func() []string {
				preset := ""
				if p.Preset != "" && p.Preset != synth.PresetBenchmark {
					preset = " --preset " + string(p.Preset)
				}
				return []string{fmt.Sprintf("gidedge data synth --out %s --images %d --size %d --val-frac %g --test-frac %g --seed %d%s",
					g(ps.synth), p.Images, p.Size, p.ValFrac, p.TestFrac, p.Seed, preset)}
			},
			summary: func() string {
				s := res.Synth
				return fmt.Sprintf("%d images of %d px (train %d, val %d, test %d), %d objects in %d classes", s.Images, s.Size, s.Train, s.Val, s.Test, s.Objects, len(s.Classes))
			},
		},
		r.trainStage(StageTeacher, "train the teacher (train)", ps.teacher, ps.teacherCfg, p.Teacher, p.TeacherEpochs, p.TeacherLR, &res.Teacher, false),
		r.trainStage(StageBaseline, "train the baseline student alone (train)", ps.baseline, ps.studentCfg, p.Student, p.StudentEpochs, p.StudentLR, &res.Baseline, false),
		r.trainStage(StageGID, "distill the student from the teacher with GID (distill)", ps.gid, ps.studentCfg, p.Student, p.StudentEpochs, p.StudentLR, &res.GID, true),
		{
			id: StageEvaluate, title: "evaluate teacher, baseline and GID student on the test split (evaluate)",
			inputs:   []string{StageSynth, StageTeacher, StageBaseline, StageGID},
			settings: func() any { return struct{ Split string }{"test"} },
			result:   &res.Eval,
			run:      r.runEvaluate,
			commands: func() []string {
				var cmds []string
				for _, m := range []struct{ dir, role string }{{ps.teacher, "teacher"}, {ps.baseline, "baseline"}, {ps.gid, "gid"}} {
					cmds = append(cmds, fmt.Sprintf("gidedge eval --checkpoint %s --data %s --split test --save-results %s",
						g(filepath.Join(m.dir, train.BestFile)), g(ps.synth), g(filepath.Join(ps.eval, m.role+".json"))))
				}
				return cmds
			},
			summary: func() string {
				e := res.Eval
				return fmt.Sprintf("test AP: teacher %.4f, baseline %.4f, GID %.4f", e.Teacher.AP, e.Baseline.AP, e.GID.AP)
			},
		},
		{
			id: StageExport, title: "export the GID student to ONNX and quantize it to INT8 (export, quantize)",
			inputs: []string{StageSynth, StageGID},
			settings: func() any {
				// The packages' defaults are part of the key: when one
				// changes, the files it made are made again.
				return struct {
					CalibImages int
					Split       string
					Opset       int
					Method      quantize.Method
					Percentile  float64
				}{p.CalibImages, "test", export.DefaultOpset, quantize.DefaultMethod, quantize.DefaultPercentile}
			},
			result: &res.Export,
			run:    r.runExport,
			commands: func() []string {
				train := filepath.Join(ps.synth, "annotations", "instances_train.json")
				return []string{
					fmt.Sprintf("gidedge export --checkpoint %s --out %s", g(filepath.Join(ps.gid, "best.safetensors")), g(ps.fp32)),
					fmt.Sprintf("mkdir -p %s && grep -o '\"file_name\": *\"[^\"]*\"' %s | cut -d'\"' -f4 | xargs -I{} ln -f %s/{} %s/",
						g(ps.calib), g(train), g(filepath.Join(ps.synth, "images")), g(ps.calib)),
					fmt.Sprintf("gidedge quantize --model %s --calib %s --calib-images %d --out %s --report",
						g(ps.fp32), g(ps.calib), p.CalibImages, g(ps.int8)),
				}
			},
			summary: func() string {
				e := res.Export
				return fmt.Sprintf("fp32 %s (parity %.1e), int8 %s; test AP fp32 %.4f, int8 %.4f",
					human.Bytes(e.FP32Bytes), e.ParityWorst, human.Bytes(e.INT8Bytes), e.FP32Eval.AP, e.INT8Eval.AP)
			},
		},
		{
			id: StageLatency, title: "latency fp32 vs int8, in process and through a server on 127.0.0.1 (benchlat, serve)",
			inputs: []string{StageSynth, StageExport},
			settings: func() any {
				return struct{ Runs, Warmup int }{p.LatencyRuns, p.LatencyWarmup}
			},
			result: &res.Latency,
			run:    r.runLatency,
			commands: func() []string {
				var cmds []string
				for _, m := range []string{ps.fp32, ps.int8} {
					cmds = append(cmds,
						fmt.Sprintf("gidedge serve --model %s --addr 127.0.0.1:8080 & sleep 2", g(m)),
						fmt.Sprintf("gidedge bench latency --model %s --data %s --split test --url http://127.0.0.1:8080 --n %d --warmup %d",
							g(m), g(ps.synth), p.LatencyRuns, p.LatencyWarmup),
						"kill %1")
				}
				return cmds
			},
			summary: func() string { return r.latencySummary() },
		},
		{
			id: StageReport, title: "write REPORT.md, REPORT.html and figures",
			inputs:   []string{StageSynth, StageTeacher, StageBaseline, StageGID, StageEvaluate, StageExport, StageLatency},
			settings: func() any { return struct{ Version int }{reportVersion} },
			result:   &struct{}{},
			run:      r.runReport,
			commands: func() []string {
				return []string{fmt.Sprintf("gidedge demo --out %s%s", g(r.out), map[bool]string{true: " --quick", false: ""}[r.opts.Quick && r.opts.Plan == nil])}
			},
			summary: func() string { return fmt.Sprintf("%s and %s", r.paths.report, r.paths.html) },
		},
	}
}

// cmdPath writes a path for a shell command: forward slashes, quoted when
// it holds a space or a shell character.
func cmdPath(p string) string {
	p = filepath.ToSlash(p)
	if strings.ContainsAny(p, " \t'\"$`\\;&|<>*?()[]{}") {
		return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
	}
	return p
}

func (r *runner) runSynth(ctx context.Context, st *stageRun) ([]string, error) {
	p := r.plan
	sum, err := synth.Generate(ctx, r.paths.synth, synth.Options{
		Images: p.Images, Size: p.Size, Seed: p.Seed, ValFrac: p.ValFrac, TestFrac: p.TestFrac, Preset: p.Preset,
	})
	if err != nil {
		return nil, err
	}
	r.res.Synth = &SynthResult{
		Dir: r.paths.synth, Images: sum.Images, Objects: sum.Objects,
		Train: sum.Train, Val: sum.Val, Test: sum.Test, Size: p.Size,
		PerClass: sum.PerClass, Classes: sum.Classes, Preset: string(sum.Preset),
	}
	return []string{r.paths.synth}, nil
}

// trainStage builds the stage that trains (or, with distil, distils) one
// detector into dir from the named config.
func (r *runner) trainStage(id, title, dir, cfgPath, name string, epochs int, lr float64, out **TrainResult, distil bool) *stage {
	inputs := []string{StageSynth}
	if distil {
		inputs = append(inputs, StageTeacher)
	}
	role := id
	s := &stage{id: id, title: title, inputs: inputs, result: out}
	s.settings = func() any {
		cfg, err := r.plan.modelConfig(name, epochs, lr)
		if err != nil {
			return err.Error()
		}
		var method *distill.Options
		if distil {
			m := distill.DefaultOptions()
			method = &m
		}
		return struct {
			Config json.RawMessage
			Seed   uint64
			Method *distill.Options
		}{cfg.JSON(), r.plan.Seed, method}
	}
	s.run = func(ctx context.Context, st *stageRun) ([]string, error) {
		cfg, err := r.plan.modelConfig(name, epochs, lr)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(cfgPath), 0o755); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(cfgPath, cfg.JSON()); err != nil {
			return nil, err
		}
		resume, err := prepareRunDir(dir, st)
		if err != nil {
			return nil, err
		}
		st.resumed = resume
		if resume {
			fmt.Fprintf(r.log, "      continuing the interrupted run in %s\n", dir)
		}
		topts := train.Options{
			Data: r.paths.synth, Out: dir, Seed: r.plan.Seed, EvalEvery: 1, Workers: r.opts.Workers,
			LogEvery: 5, CheckpointEvery: 20, Progress: r.progress, Log: indent(r.log), Resume: resume,
			StopAfter: r.opts.stopAfter[id],
		}
		if !resume {
			topts.Config = cfg
		}
		var tres *train.Result
		tr := &TrainResult{Role: role, Config: cfg.Name, Backbone: cfg.Backbone.Type, Dir: dir}
		if distil {
			dopts := distill.RunOptions{Train: topts}
			if !resume {
				dopts.Teacher = filepath.Join(r.paths.teacher, train.BestFile)
			}
			dres, err := distill.Run(ctx, dopts)
			if dres != nil {
				tres = dres.Result
				tr.Method = distill.Describe(dres.Settings.Options)
				if dres.Stats.Images > 0 {
					tr.GIsPerImage = float64(dres.Stats.GIs) / float64(dres.Stats.Images)
				}
			}
			if err != nil {
				return nil, err
			}
		} else {
			tres, err = train.Run(ctx, topts)
			if err != nil {
				return nil, err
			}
		}
		if tres == nil || tres.Interrupted {
			return nil, fmt.Errorf("training stopped early: %w", context.Canceled)
		}
		if tres.Best == "" {
			return nil, fmt.Errorf("%s has no %s (no evaluation ran)", dir, train.BestFile)
		}
		h := tres.HParams
		tr.Checkpoint = tres.Best
		tr.Params, tr.GFLOPs, tr.ImgSize = h.Params, h.GFLOPs, h.ImgSize
		tr.Epochs, tr.Steps, tr.Batch = tres.Epochs, tres.Steps, h.Batch
		tr.BestValAP, tr.BestEpoch = tres.BestAP, tres.BestEpoch
		tr.TrainSeconds, tr.ImagesPerSec = tres.TrainTime.Seconds(), tres.ImagesPerSec
		tr.StepMS = tres.StepTime.Seconds() * 1000
		*out = tr
		return []string{cfgPath, tres.Best, filepath.Join(dir, train.MetricsFile)}, nil
	}
	s.commands = func() []string {
		if distil {
			return []string{fmt.Sprintf("gidedge distill --teacher %s --student %s --data %s --out %s --seed %d",
				cmdPath(filepath.Join(r.paths.teacher, train.BestFile)), cmdPath(cfgPath), cmdPath(r.paths.synth), cmdPath(dir), r.plan.Seed)}
		}
		return []string{fmt.Sprintf("gidedge train --model %s --data %s --out %s --seed %d",
			cmdPath(cfgPath), cmdPath(r.paths.synth), cmdPath(dir), r.plan.Seed)}
	}
	s.summary = func() string {
		t := *out
		if t == nil {
			return ""
		}
		return fmt.Sprintf("%s: %d steps in %s (%.1f images/s), best val AP %.4f at epoch %d", t.Config, t.Steps, seconds(t.TrainSeconds), t.ImagesPerSec, t.BestValAP, t.BestEpoch)
	}
	return s
}

// prepareRunDir decides whether a training stage continues the run in dir
// (same stage key, a last.safetensors to resume from, no --force) or starts
// afresh in an emptied folder tagged with the key.
func prepareRunDir(dir string, st *stageRun) (resume bool, err error) {
	if !st.force {
		key, kerr := os.ReadFile(filepath.Join(dir, keyFile))
		_, lerr := os.Stat(filepath.Join(dir, train.LastFile))
		if kerr == nil && lerr == nil && strings.TrimSpace(string(key)) == st.key {
			return true, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return false, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	return false, atomicfile.WriteFile(filepath.Join(dir, keyFile), []byte(st.key+"\n"))
}

func (r *runner) runEvaluate(ctx context.Context, st *stageRun) ([]string, error) {
	test, err := dataset.Load(r.paths.synth, "test")
	if err != nil {
		return nil, err
	}
	if err := test.WriteReport(r.log, "      "); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.paths.eval, 0o755); err != nil {
		return nil, err
	}
	ev := &EvalResult{Split: "test", Images: len(test.Images)}
	for _, im := range test.Images {
		for _, o := range im.Objects {
			if !o.Crowd {
				ev.Objects++
			}
		}
	}
	var outputs []string
	for _, m := range []struct {
		role string
		tr   *TrainResult
		dst  *ModelEval
	}{{"teacher", r.res.Teacher, &ev.Teacher}, {"baseline", r.res.Baseline, &ev.Baseline}, {"gid", r.res.GID, &ev.GID}} {
		d, _, _, err := models.LoadCheckpoint(m.tr.Checkpoint)
		if err != nil {
			return nil, err
		}
		start := now()
		metrics, dets, err := train.Evaluate(ctx, d, test, train.EvalOptions{Batch: 8, Workers: r.opts.Workers})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.role, err)
		}
		secs := since(start)
		path := filepath.Join(r.paths.eval, m.role+".json")
		if err := evaluate.WriteResults(path, dets); err != nil {
			return nil, err
		}
		*m.dst = modelEval(m.role, d.Config.Name+" (engine)", m.tr.Checkpoint, path, metrics, secs, len(test.Images))
		fmt.Fprintf(r.log, "      %-8s AP %.4f AP50 %.4f AP75 %.4f (%d detections, %s)\n", m.role, metrics.AP, metrics.AP50, metrics.AP75, len(dets), seconds(secs))
		outputs = append(outputs, path)
	}
	r.res.Eval = ev
	return outputs, nil
}

// modelEval copies what the report needs out of COCO metrics.
func modelEval(role, name, source, results string, m *evaluate.Metrics, secs float64, images int) ModelEval {
	e := ModelEval{
		Role: role, Name: name, Source: source, Results: results,
		AP: m.AP, AP50: m.AP50, AP75: m.AP75, APSmall: m.APSmall, APMedium: m.APMedium, APLarge: m.APLarge, AR100: m.AR100,
		PerClass: m.PerClass, PR50: append([]float64(nil), m.Precision50...), Detections: m.Detections, Seconds: secs,
	}
	if secs > 0 {
		e.ImagesPerSec = float64(images) / secs
	}
	return e
}

func (r *runner) runExport(ctx context.Context, st *stageRun) ([]string, error) {
	ps := r.paths
	if err := os.RemoveAll(ps.export); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(ps.export, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintf(r.log, "      exporting %s with a parity check against the engine\n", r.res.GID.Checkpoint)
	rep, err := export.ExportCheckpoint(r.res.GID.Checkpoint, ps.fp32, export.Options{})
	if err != nil {
		return nil, err
	}
	er := &ExportResult{
		FP32Path: ps.fp32, FP32Bytes: int64(rep.Bytes), Opset: rep.Opset, Nodes: rep.Nodes, FoldedBN: rep.FoldedBN,
	}
	if rep.Parity != nil {
		er.ParityWorst, er.ParityOutput, er.ParityTol, er.ORTVersion = rep.Parity.Worst, rep.Parity.WorstOutput, rep.Parity.Tolerance, rep.Parity.ORTVersion
	}
	fmt.Fprintf(r.log, "      %s: %s, %d nodes, opset %d, parity worst %.2e on %s (tolerance %.0e)\n",
		ps.fp32, human.Bytes(er.FP32Bytes), er.Nodes, er.Opset, er.ParityWorst, er.ParityOutput, er.ParityTol)

	n, err := linkTrainImages(r.paths.synth, ps.calib)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.log, "      calibration folder %s: %d training images\n", ps.calib, n)
	start := now()
	qrep, err := quantize.Run(ctx, quantize.Options{
		Model: ps.fp32, Out: ps.int8, Calib: ps.calib, CalibImages: r.plan.CalibImages,
		Report: true, BenchRuns: 10, Log: indent(r.log),
	})
	if err != nil {
		return nil, err
	}
	er.QuantizeSecond = since(start)
	er.INT8Path, er.INT8Bytes = ps.int8, qrep.INT8.SizeBytes
	er.CalibImages, er.CalibMethod, er.Activations, er.PerChannel = qrep.CalibImages, string(qrep.Method), string(qrep.Activations), qrep.PerChannel
	er.QuantizedOps, er.FloatOps, er.ORTOps, er.CosineMin, er.QuantizeNotes = qrep.QuantizedOps, qrep.FloatOps, qrep.ORTOps, qrep.CosineMin, qrep.Notes
	if st, err := os.Stat(ps.int8); err == nil {
		er.INT8Bytes = st.Size()
	}

	test, err := dataset.Load(r.paths.synth, "test")
	if err != nil {
		return nil, err
	}
	outputs := []string{ps.fp32, ps.int8}
	for _, m := range []struct {
		role, model string
		dst         *ModelEval
	}{{"gid-fp32", ps.fp32, &er.FP32Eval}, {"gid-int8", ps.int8, &er.INT8Eval}} {
		path := filepath.Join(ps.export, m.role+".results.json")
		e, err := evaluateONNX(ctx, m.model, test, path, r.progress)
		if err != nil {
			return nil, err
		}
		e.Role = m.role
		*m.dst = *e
		fmt.Fprintf(r.log, "      %-8s AP %.4f AP50 %.4f AP75 %.4f (%d detections, %.1f images/s)\n", m.role, e.AP, e.AP50, e.AP75, e.Detections, e.ImagesPerSec)
		outputs = append(outputs, path)
	}
	r.res.Export = er
	return outputs, nil
}

// linkTrainImages fills dir with the images of the training split (hard
// links, copies where links fail) so calibration never sees a test image.
func linkTrainImages(data, dir string) (int, error) {
	ds, err := dataset.Load(data, "train")
	if err != nil {
		return 0, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	for _, im := range ds.Images {
		dst := filepath.Join(dir, filepath.Base(im.Path))
		if err := os.Link(im.Path, dst); err != nil {
			if err := copyFile(im.Path, dst); err != nil {
				return 0, err
			}
		}
	}
	return len(ds.Images), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
