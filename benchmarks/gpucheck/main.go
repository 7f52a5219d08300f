// Command gpucheck is the Go half of benchmarks/gpu_check.sh: the parts of
// the GPU check that run gidedge's training, built here and carried to the
// GPU machine (which has no Go; the gidedge binary itself needs OpenCV's
// libraries, which that machine lacks, so this program links only the
// engine, the models, train and distill).
//
//	gpucheck gid  --out DIR [--device cuda] [--images N --size S --batch B --teacher-steps N --teacher-seconds T --steps N]
//	    synthetic data, a retinanet-teacher trained from scratch (for N
//	    steps or T seconds, whichever ends first), then a
//	    retinanet-student distilled from it with GID, evaluated on the
//	    validation split; writes DIR/gid.json and fails unless the student's
//	    loss fell and the evaluation produced metrics.
//	gpucheck time [--device cuda] [--size 320 --batch 32 --steps N --warmup N]
//	    the median wall time of a plain retinanet-student training step and
//	    of a GID step (retinanet-teacher forward, distillation losses) with
//	    the update, both synchronised with the device, and of the teacher's
//	    forward pass; prints one JSON object.
//
// Both take --device (default $GIDEDGE_DEVICE, else cpu), so the same
// commands rehearse on the CUDA simulator and measure on this CPU.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/distill"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/devices"
	"github.com/gidedge/gidedge/engine/enginetest"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/engine/optim"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/train"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: gpucheck gid|time [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gid":
		err = runGID(os.Args[2:], os.Stdout)
	case "time":
		err = runTime(os.Args[2:], os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q, want gid or time", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpucheck:", err)
		os.Exit(1)
	}
}

// guard turns the engine's typed panics (a device error) into an error, as
// gidedge's command line does.
func guard(fn func() error) error { return engine.Guard(fn) }

func selectDevice(name string) (backend.Backend, error) {
	dev, err := devices.Select(name)
	if err != nil {
		return nil, err
	}
	return dev, nil
}

// GIDReport is gid.json.
type GIDReport struct {
	Device         string    `json:"device"`
	Describe       string    `json:"describe"`
	Teacher        string    `json:"teacher"`
	Student        string    `json:"student"`
	Images         int       `json:"images"`
	Size           int       `json:"size"`
	Batch          int       `json:"batch"`
	TeacherSteps   int       `json:"teacher_steps"`
	TeacherStepMS  float64   `json:"teacher_step_ms"`
	Steps          int       `json:"steps"`
	StepMS         float64   `json:"step_ms"`
	Losses         []float64 `json:"losses"` // the student's logged losses, in order
	FirstLoss      float64   `json:"first_loss"`
	LastLoss       float64   `json:"last_loss"`
	LossFell       bool      `json:"loss_fell"`
	AP             float64   `json:"ap"`
	AP50           float64   `json:"ap50"`
	Evaluated      bool      `json:"evaluated"`
	SecondsOverall float64   `json:"seconds_overall"`
}

func runGID(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("gid", flag.ContinueOnError)
	out := fs.String("out", "", "folder for the data, both runs and gid.json (required)")
	device := fs.String("device", "", "engine device (default $GIDEDGE_DEVICE, else cpu)")
	images := fs.Int("images", 240, "synthetic images (80% train, 20% val)")
	size := fs.Int("size", 160, "image and input size")
	batch := fs.Int("batch", 8, "images per step")
	teacherSteps := fs.Int("teacher-steps", 300, "teacher training steps, at most")
	teacherSeconds := fs.Float64("teacher-seconds", 0, "stop the teacher's training after this long (0: no limit)")
	steps := fs.Int("steps", 200, "GID steps")
	seed := fs.Uint64("seed", 1, "seed of the data, the weights and the order")
	teacherName := fs.String("teacher", "retinanet-teacher", "teacher config (a smaller one to rehearse on the simulator)")
	studentName := fs.String("student", "retinanet-student", "student config")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("gid: --out is required")
	}
	dev, err := selectDevice(*device)
	if err != nil {
		return err
	}
	start := time.Now()
	ctx := context.Background()
	data := filepath.Join(*out, "synth")
	if _, err := synth.Generate(ctx, data, synth.Options{Images: *images, Size: *size, Seed: *seed, ValFrac: 0.2, MinObjects: 1, MaxObjects: 4, Force: true}); err != nil {
		return err
	}
	trainSet, err := dataset.Load(data, "train")
	if err != nil {
		return err
	}
	perEpoch := len(trainSet.Images) / *batch
	if perEpoch == 0 {
		return fmt.Errorf("gid: %d training images for batch %d", len(trainSet.Images), *batch)
	}
	epochs := func(steps int) int { return (steps + perEpoch - 1) / perEpoch }
	rep := GIDReport{Device: dev.Name(), Describe: dev.Describe(), Teacher: *teacherName, Student: *studentName, Images: *images, Size: *size, Batch: *batch}

	teacherCfg, err := models.Resolve(*teacherName)
	if err != nil {
		return err
	}
	teacherDir := filepath.Join(*out, "teacher")
	tctx := ctx
	if *teacherSeconds > 0 {
		// A run stopped by its deadline saves last.safetensors, as an
		// interrupted one does: the teacher is whatever it learnt by then.
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, time.Duration(*teacherSeconds*float64(time.Second)))
		defer cancel()
	}
	var tres *train.Result
	err = guard(func() error {
		var err error
		tres, err = train.Run(tctx, train.Options{Config: teacherCfg, Data: data, Out: teacherDir, ValSplit: train.NoEval,
			Epochs: epochs(*teacherSteps), Batch: *batch, ImgSize: *size, Seed: *seed, StopAfter: *teacherSteps, Log: stdout})
		return err
	})
	if err != nil && !(tres != nil && tres.Interrupted) {
		return fmt.Errorf("gid: teacher: %w", err)
	}
	if tres.Steps == 0 {
		return errors.New("gid: the teacher trained no step in its time")
	}
	rep.TeacherSteps, rep.TeacherStepMS = tres.Steps, tres.StepTime.Seconds()*1000

	studentCfg, err := models.Resolve(*studentName)
	if err != nil {
		return err
	}
	gidDir := filepath.Join(*out, "gid")
	method := distill.DefaultOptions()
	var res *distill.Result
	err = guard(func() error {
		var err error
		res, err = distill.Run(ctx, distill.RunOptions{
			Train: train.Options{Config: studentCfg, Data: data, Out: gidDir, ValSplit: "val", EvalEvery: 1000,
				Epochs: epochs(*steps), Batch: *batch, ImgSize: *size, Seed: *seed, StopAfter: *steps, LogEvery: max(1, *steps/20), Log: stdout},
			Teacher: filepath.Join(teacherDir, train.LastFile), Method: &method,
		})
		return err
	})
	if err != nil && !(res != nil && res.Interrupted) {
		return fmt.Errorf("gid: distill: %w", err)
	}
	rep.Steps, rep.StepMS = res.Steps, res.StepTime.Seconds()*1000

	// The student evaluates: the last checkpoint on the validation split.
	err = guard(func() error {
		d, _, _, err := models.LoadCheckpoint(filepath.Join(gidDir, train.LastFile))
		if err != nil {
			return err
		}
		val, err := dataset.Load(data, "val")
		if err != nil {
			return err
		}
		m, _, err := train.Evaluate(ctx, d, val, train.EvalOptions{ImgSize: *size, Batch: *batch})
		if err != nil {
			return err
		}
		rep.AP, rep.AP50, rep.Evaluated = m.AP, m.AP50, true
		return nil
	})
	if err != nil {
		return fmt.Errorf("gid: evaluate: %w", err)
	}
	if rep.Losses, err = trainLosses(filepath.Join(gidDir, train.MetricsFile)); err != nil {
		return err
	}
	if n := len(rep.Losses); n >= 4 {
		k := max(1, n/5)
		rep.FirstLoss, rep.LastLoss = mean(rep.Losses[:k]), mean(rep.Losses[n-k:])
		rep.LossFell = rep.LastLoss < rep.FirstLoss
	}
	rep.SecondsOverall = time.Since(start).Seconds()
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "gid.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "gpucheck gid: %s: teacher %d steps (%.1f ms/step), GID %d steps (%.1f ms/step), loss %.4f → %.4f, val AP %.4f AP50 %.4f, %.0f s\n",
		rep.Device, rep.TeacherSteps, rep.TeacherStepMS, rep.Steps, rep.StepMS, rep.FirstLoss, rep.LastLoss, rep.AP, rep.AP50, rep.SecondsOverall)
	switch {
	case rep.Steps != *steps:
		return fmt.Errorf("gid: %d GID steps ran, want %d", rep.Steps, *steps)
	case !rep.LossFell:
		return fmt.Errorf("gid: the student's loss did not fall (%.4f → %.4f over %d records)", rep.FirstLoss, rep.LastLoss, len(rep.Losses))
	case !rep.Evaluated || math.IsNaN(rep.AP):
		return errors.New("gid: the distilled student did not evaluate")
	}
	return nil
}

// trainLosses reads the training losses of a run's metrics.jsonl.
func trainLosses(path string) ([]float64, error) {
	recs, err := train.ReadRecords(path)
	if err != nil {
		return nil, err
	}
	var out []float64
	for _, r := range recs {
		if r.Type == train.RecordTrain {
			out = append(out, r.Loss)
		}
	}
	return out, nil
}

func mean(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// TimeReport is what gpucheck time prints.
type TimeReport struct {
	Device           string             `json:"device"`
	Describe         string             `json:"describe"`
	TF32             bool               `json:"tf32"`
	Student          string             `json:"student"`
	Teacher          string             `json:"teacher"`
	Size             int                `json:"size"`
	Batch            int                `json:"batch"`
	Steps            int                `json:"steps"`
	StudentStepMS    float64            `json:"student_step_ms"`
	StudentStepMinMS float64            `json:"student_step_min_ms"`
	StudentStepCPUMS float64            `json:"student_step_cpu_ms"` // process CPU time (user+sys) per step
	GIDStepMS        float64            `json:"gid_step_ms"`
	GIDStepMinMS     float64            `json:"gid_step_min_ms"`
	GIDStepCPUMS     float64            `json:"gid_step_cpu_ms"`
	TeacherForwardMS float64            `json:"teacher_forward_ms"`
	StudentLoss      [2]float64         `json:"student_loss_first_last"`
	GIDLoss          [2]float64         `json:"gid_loss_first_last"`
	Figures          map[string]float64 `json:"figures,omitempty"`
}

func runTime(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("time", flag.ContinueOnError)
	device := fs.String("device", "", "engine device (default $GIDEDGE_DEVICE, else cpu)")
	size := fs.Int("size", 320, "input size")
	batch := fs.Int("batch", 32, "images per step")
	steps := fs.Int("steps", 10, "timed steps of each kind")
	warmup := fs.Int("warmup", 3, "untimed steps first")
	teacherName := fs.String("teacher", "retinanet-teacher", "teacher config")
	studentName := fs.String("student", "retinanet-student", "student config")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *steps < 1 || *warmup < 0 {
		return errors.New("time: --steps ≥ 1 and --warmup ≥ 0")
	}
	dev, err := selectDevice(*device)
	if err != nil {
		return err
	}
	rep := TimeReport{Device: dev.Name(), Describe: dev.Describe(), Student: *studentName, Teacher: *teacherName, Size: *size, Batch: *batch, Steps: *steps}
	if t, ok := dev.(interface{ TF32() bool }); ok {
		rep.TF32 = t.TF32()
	}
	err = guard(func() error { return timeSteps(dev, &rep, *warmup) })
	if err != nil {
		return err
	}
	if r, ok := dev.(backend.Reporter); ok {
		rep.Figures = map[string]float64{}
		for _, f := range r.Figures() {
			rep.Figures[f.Name] = f.Value
		}
	}
	b, _ := json.Marshal(rep)
	fmt.Fprintln(stdout, string(b))
	return nil
}

// timeSteps measures the student step, the GID step and the teacher's
// forward pass on synthetic data with fixed targets.
func timeSteps(dev backend.Backend, rep *TimeReport, warmup int) error {
	classes := []string{"a", "b", "c", "d", "e", "f"}
	build := func(name string, seed uint64) (*models.Detector, error) {
		cfg, err := models.Named(name)
		if err != nil {
			return nil, err
		}
		cfg = cfg.WithClasses(classes)
		cfg.Input.Size = rep.Size
		return models.New(cfg, seed)
	}
	student, err := build(rep.Student, 1)
	if err != nil {
		return err
	}
	teacher, err := build(rep.Teacher, 2)
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(5, 6))
	n, s := rep.Batch, float64(rep.Size)
	x := engine.RandN(rng, 1, n, 3, rep.Size, rep.Size)
	targets := make([][]dataset.Target, n)
	for i := range targets {
		for j := 0; j < 4; j++ {
			x1, y1 := rng.Float64()*s*0.75, rng.Float64()*s*0.75
			w := s/20 + rng.Float64()*s*0.35
			targets[i] = append(targets[i], dataset.Target{Box: dataset.Box{X1: x1, Y1: y1, X2: min(x1+w, s), Y2: min(y1+w, s)}, Class: rng.IntN(len(classes))})
		}
	}
	gid, err := distill.New(distill.NewDetectorTeacher(teacher, "teacher"), student, distill.DefaultOptions(), 1)
	if err != nil {
		return err
	}
	params, err := models.Prefixed(student, models.ModelPrefix)
	if err != nil {
		return err
	}
	extra, err := models.Prefixed(gid.Module(), "extra.")
	if err != nil {
		return err
	}
	params = nn.Trainable(append(params, extra...))
	opt, err := optim.NewAdamW(params, optim.AdamWConfig{LR: 1e-4, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.05, Decay: optim.NoDecayForVectors})
	if err != nil {
		return err
	}
	// step is one training step as gidedge train runs it: forward, loss
	// (read on the host), backward, clipping at norm 10, AdamW; then the
	// device is synchronised so the wall clock covers the work.
	step := func(withGID bool) (float64, error) {
		out := student.Forward(x, true)
		loss, _, err := student.Loss(out, targets)
		if err != nil {
			return 0, err
		}
		if withGID {
			st, err := gid.Step(context.Background(), x, out, targets)
			if err != nil {
				return 0, err
			}
			loss = engine.Add(loss, st.Loss)
		}
		value := loss.Item()
		loss.Backward()
		if _, err := optim.ClipGradNorm(params, 10); err != nil {
			return 0, err
		}
		opt.Step()
		opt.ZeroGrad()
		loss.Release()
		return float64(value), dev.Sync()
	}
	measure := func(withGID bool) (median, fastest, cpu float64, losses [2]float64, err error) {
		var times []float64
		var cpu0 time.Duration
		for i := 0; i < warmup+rep.Steps; i++ {
			if i == warmup {
				cpu0 = enginetest.CPUTime()
			}
			t0 := time.Now()
			v, err := step(withGID)
			if err != nil {
				return 0, 0, 0, losses, err
			}
			if i == warmup {
				losses[0] = v
			}
			losses[1] = v
			if i >= warmup {
				times = append(times, time.Since(t0).Seconds()*1000)
			}
		}
		cpu = (enginetest.CPUTime() - cpu0).Seconds() * 1000 / float64(rep.Steps)
		sort.Float64s(times)
		return times[len(times)/2], times[0], cpu, losses, nil
	}
	if rep.StudentStepMS, rep.StudentStepMinMS, rep.StudentStepCPUMS, rep.StudentLoss, err = measure(false); err != nil {
		return err
	}
	if rep.GIDStepMS, rep.GIDStepMinMS, rep.GIDStepCPUMS, rep.GIDLoss, err = measure(true); err != nil {
		return err
	}
	var fwd []float64
	for i := 0; i < warmup+rep.Steps; i++ {
		t0 := time.Now()
		engine.NoGrad(func() {
			out := teacher.Forward(x, false)
			engine.Recycle(slices.Concat(out.Features, out.ClsLogits, out.BoxRegs, out.Centerness)...)
		})
		if err := dev.Sync(); err != nil {
			return err
		}
		if i >= warmup {
			fwd = append(fwd, time.Since(t0).Seconds()*1000)
		}
	}
	sort.Float64s(fwd)
	rep.TeacherForwardMS = fwd[len(fwd)/2]
	return nil
}
