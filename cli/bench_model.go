package cli

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/engine/optim"
	"github.com/gidedge/gidedge/engine/profile"
	"github.com/gidedge/gidedge/models"
)

// benchModelBoxes is the number of synthetic target boxes per image.
const benchModelBoxes = 4

// benchFamily is one kernel family's share of a profiled training step.
type benchFamily struct {
	Family     string  `json:"family"`
	ForwardMS  float64 `json:"forward_ms"`
	BackwardMS float64 `json:"backward_ms"`
	UpdateMS   float64 `json:"update_ms"`
	TotalMS    float64 `json:"total_ms"`
	// Share is TotalMS as a percentage of the profiled step's wall time.
	Share float64 `json:"share_pct"`
	// CPUMS is the process's CPU time during the family's kernels (all
	// workers), and CPUShare its percentage of the profiled steps' CPU time.
	CPUMS        float64 `json:"cpu_ms"`
	CPUShare     float64 `json:"cpu_share_pct"`
	CallsPerStep float64 `json:"calls_per_step"`
}

// benchModel is the result of `bench engine --model`.
type benchModel struct {
	Name    string `json:"name"`
	Input   []int  `json:"input"`
	Classes int    `json:"classes"`
	Params  int    `json:"params"`
	// ForwardGFLOP is the forward pass of the whole batch (2 × the
	// convolutions' multiply-accumulates).
	ForwardGFLOP float64 `json:"forward_gflop"`
	// Positives is the anchors the synthetic targets make positive.
	Positives         int     `json:"positives"`
	ForwardMS         float64 `json:"forward_ms"`
	TrainStepMS       float64 `json:"train_step_ms"`
	TrainStepMinMS    float64 `json:"train_step_min_ms"`
	TrainForwardMS    float64 `json:"train_forward_ms"`
	BackwardMS        float64 `json:"backward_ms"`
	UpdateMS          float64 `json:"update_ms"`
	CPUMSPerStep      float64 `json:"cpu_ms_per_step"`
	Steps             int     `json:"steps"`
	AllocBytesPerStep int64   `json:"alloc_bytes_per_step"`
	PoolFreshPerStep  int64   `json:"pool_fresh_bytes_per_step"`
	ToHostPerStep     float64 `json:"to_host_per_step"`
	FromHostPerStep   float64 `json:"from_host_per_step"`
	Loss              float32 `json:"final_loss"`
	// ProfiledSteps ran with every kernel timed (and synchronised) after
	// the timed steps; ProfiledStepMS is their median wall time, which the
	// family shares divide.
	ProfiledSteps     int           `json:"profiled_steps"`
	ProfiledStepMS    float64       `json:"profiled_step_ms"`
	ProfiledStepCPUMS float64       `json:"profiled_step_cpu_ms"`
	Families          []benchFamily `json:"families"`
}

// benchModelStep is one training step of a named detector, as `gidedge
// train` runs it: forward, detection loss (anchor assignment on the host),
// the loss read, backward, gradient clipping, AdamW and ZeroGrad.
type benchModelStep struct {
	det     *models.Detector
	params  []nn.Named
	opt     *optim.AdamW
	x       *engine.Tensor
	targets [][]dataset.Target
	prof    *profile.Backend
}

// phases of the last step, in milliseconds.
func (s *benchModelStep) run() (fwd, bwd, upd float64, loss float32, err error) {
	t0 := time.Now()
	s.prof.SetPhase(profile.Forward)
	out := s.det.Forward(s.x, true)
	total, _, err := s.det.Loss(out, s.targets)
	if err != nil {
		return 0, 0, 0, 0, err
	}
	loss = total.Item()
	t1 := time.Now()
	s.prof.SetPhase(profile.Backward)
	total.Backward()
	t2 := time.Now()
	s.prof.SetPhase(profile.Update)
	if clip := s.det.Config.Train.GradClip; clip > 0 {
		if _, err := optim.ClipGradNorm(s.params, float32(clip)); err != nil {
			return 0, 0, 0, 0, err
		}
	}
	s.opt.Step()
	s.opt.ZeroGrad()
	total.Release()
	t3 := time.Now()
	return ms(t1.Sub(t0)), ms(t2.Sub(t1)), ms(t3.Sub(t2)), loss, nil
}

// newBenchModelStep builds the named detector on the device prof wraps,
// with a batch of random images and benchModelBoxes random boxes each.
func newBenchModelStep(opts benchEngineOptions, prof *profile.Backend) (*benchModelStep, error) {
	cfg, err := models.Named(opts.Model)
	if err != nil {
		return nil, fmt.Errorf("bench engine: --model: %w", err)
	}
	names := make([]string, opts.Classes)
	for i := range names {
		names[i] = fmt.Sprintf("class%d", i)
	}
	cfg = cfg.WithClasses(names)
	cfg.Input.Size = opts.Size
	det, err := models.New(cfg, opts.Seed)
	if err != nil {
		return nil, fmt.Errorf("bench engine: %w", err)
	}
	params := nn.Params(det)
	t := cfg.Train
	opt, err := optim.NewAdamW(params, optim.AdamWConfig{LR: float32(t.LR), Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: float32(t.WeightDecay), Decay: optim.NoDecayForVectors})
	if err != nil {
		return nil, fmt.Errorf("bench engine: %w", err)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed+7))
	s := &benchModelStep{det: det, params: params, opt: opt, prof: prof,
		x: engine.RandN(rng, 1, opts.Batch, 3, opts.Size, opts.Size), targets: make([][]dataset.Target, opts.Batch)}
	side := float64(opts.Size)
	for i := range s.targets {
		for range benchModelBoxes {
			w := side * (0.05 + 0.4*rng.Float64())
			x1, y1 := rng.Float64()*(side-w), rng.Float64()*(side-w)
			s.targets[i] = append(s.targets[i], dataset.Target{Box: dataset.Box{X1: x1, Y1: y1, X2: x1 + w, Y2: y1 + w*(0.6+0.8*rng.Float64())}, Class: rng.IntN(opts.Classes)})
		}
		for j := range s.targets[i] {
			s.targets[i][j].Box.Y2 = min(s.targets[i][j].Box.Y2, side)
		}
	}
	return s, nil
}

// positives counts the anchors the synthetic targets make positive.
func (s *benchModelStep) positives(size int) int {
	p := s.det.Priors(size, size)
	n := 0
	for _, ts := range s.targets {
		boxes := make([]float32, 0, 4*len(ts))
		for _, t := range ts {
			boxes = append(boxes, float32(t.Box.X1), float32(t.Box.Y1), float32(t.Box.X2), float32(t.Box.Y2))
		}
		for _, a := range s.det.Assign(p, boxes) {
			if a >= 0 {
				n++
			}
		}
	}
	return n
}

// benchModelNet times a named detector's training step and inference
// forward on the current device, then profiles a few steps by kernel family.
func benchModelNet(ctx context.Context, opts benchEngineOptions) (benchModel, error) {
	prev := engine.Device()
	prof := profile.Wrap(prev)
	backend.UseBackend(prof)
	defer backend.UseBackend(prev)
	s, err := newBenchModelStep(opts, prof)
	if err != nil {
		return benchModel{}, err
	}
	cost := s.det.Cost(opts.Size, opts.Size)
	r := benchModel{
		Name: opts.Model, Input: s.x.Shape(), Classes: opts.Classes, Params: cost.Params,
		ForwardGFLOP: cost.GFLOPs() * float64(opts.Batch), Positives: s.positives(opts.Size), Steps: opts.Steps,
	}
	for i := 0; i < opts.Warmup; i++ {
		if _, _, _, _, err := s.run(); err != nil {
			return r, fmt.Errorf("bench engine: warm-up step: %w", err)
		}
	}
	stop, err := startCPUProfile(opts.CPUProfile)
	if err != nil {
		return r, err
	}
	defer stop()
	var fwd, bwd, upd, step []float64
	var costs stepCosts
	for i := 0; i < opts.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("bench engine: %w", err)
		}
		var f, b, u float64
		if err := costs.measure(func() (err error) { f, b, u, r.Loss, err = s.run(); return err }); err != nil {
			return r, fmt.Errorf("bench engine: step %d: %w", i, err)
		}
		fwd, bwd, upd, step = append(fwd, f), append(bwd, b), append(upd, u), append(step, f+b+u)
	}
	r.ToHostPerStep, r.FromHostPerStep, r.AllocBytesPerStep, r.PoolFreshPerStep, r.CPUMSPerStep = costs.perStep()
	r.TrainForwardMS, r.BackwardMS, r.UpdateMS = median(fwd), median(bwd), median(upd)
	r.TrainStepMS, r.TrainStepMinMS = median(step), slices.Min(step)

	// Profiled steps, apart from the timed ones: synchronising after every
	// kernel slows an asynchronous device down.
	r.ProfiledSteps = opts.ProfileSteps
	if r.ProfiledSteps > 0 {
		var wall []float64
		prof.Reset()
		cpu0 := profile.CPUTime()
		prof.Start()
		for i := 0; i < r.ProfiledSteps; i++ {
			f, b, u, _, err := s.run()
			if err != nil {
				prof.Stop()
				return r, fmt.Errorf("bench engine: profiled step %d: %w", i, err)
			}
			wall = append(wall, f+b+u)
		}
		prof.Stop()
		r.ProfiledStepMS = median(wall)
		r.ProfiledStepCPUMS = ms(profile.CPUTime()-cpu0) / float64(r.ProfiledSteps)
		r.Families = familyShares(prof.Report(), r.ProfiledSteps, r.ProfiledStepMS, r.ProfiledStepCPUMS)
	}

	// Inference forward: eval mode, no graph.
	var inf []float64
	for i := 0; i < opts.Warmup+opts.Steps; i++ {
		engine.NoGrad(func() {
			t0 := time.Now()
			out := s.det.Forward(s.x, false)
			engine.Recycle(out.ClsLogits...)
			engine.Recycle(out.BoxRegs...)
			if i >= opts.Warmup {
				inf = append(inf, ms(time.Since(t0)))
			}
		})
	}
	r.ForwardMS = median(inf)
	return r, nil
}

// familyShares turns the profiler's totals into per-step rows, plus an
// "engine and host" row for the step time outside kernels (the autograd
// tape, anchor assignment, the Go runtime).
func familyShares(rows []profile.Row, steps int, stepMS, stepCPUMS float64) []benchFamily {
	n := float64(steps)
	var out []benchFamily
	var kernels, kernelsCPU float64
	for _, r := range rows {
		f := benchFamily{
			Family:    string(r.Family),
			ForwardMS: ms(r.Time[profile.Forward]) / n, BackwardMS: ms(r.Time[profile.Backward]) / n, UpdateMS: ms(r.Time[profile.Update]) / n,
			TotalMS: ms(r.Total()) / n,
		}
		for _, c := range r.Calls {
			f.CallsPerStep += float64(c) / n
		}
		f.Share = 100 * f.TotalMS / stepMS
		f.CPUMS = ms(r.TotalCPU()) / n
		f.CPUShare = 100 * f.CPUMS / stepCPUMS
		kernels += f.TotalMS
		kernelsCPU += f.CPUMS
		out = append(out, f)
	}
	rest, restCPU := max(0, stepMS-kernels), max(0, stepCPUMS-kernelsCPU)
	out = append(out, benchFamily{Family: "outside kernels", TotalMS: rest, Share: 100 * rest / stepMS, CPUMS: restCPU, CPUShare: 100 * restCPU / stepCPUMS})
	return out
}

func printBenchModel(w io.Writer, r benchEngineResult) error {
	m := r.Model
	fmt.Fprintf(w, "engine benchmark  %s  %s, %d cores, device %s\n", r.Date, r.CPU, r.Cores, r.Device)
	fmt.Fprintf(w, "OpenBLAS: %s\n", r.OpenBLAS)
	if r.LoadAverage != "" {
		fmt.Fprintf(w, "load average at start: %s, at end: %s (other processes share these cores)\n", r.LoadAverage, r.LoadAverageEnd)
	}
	fmt.Fprintf(w, "\n%s %v, %d classes, %d parameters, %.2f GFLOP forward per batch; %d positive anchors\n", m.Name, m.Input, m.Classes, m.Params, m.ForwardGFLOP, m.Positives)
	fmt.Fprintf(w, "  forward (inference)  %8.2f ms\n", m.ForwardMS)
	fmt.Fprintf(w, "  train step           %8.2f ms  (min %.2f ms; median of %d steps)\n", m.TrainStepMS, m.TrainStepMinMS, m.Steps)
	fmt.Fprintf(w, "    forward + loss %.2f ms, backward %.2f ms, clip + update %.2f ms\n", m.TrainForwardMS, m.BackwardMS, m.UpdateMS)
	fmt.Fprintf(w, "    CPU time %.2f ms per step (all cores)\n", m.CPUMSPerStep)
	fmt.Fprintf(w, "  allocated per step   %8.1f KiB  (device allocator misses %.1f KiB)\n", float64(m.AllocBytesPerStep)/1024, float64(m.PoolFreshPerStep)/1024)
	fmt.Fprintf(w, "  host transfers       %8.1f reads, %.1f writes per step\n", m.ToHostPerStep, m.FromHostPerStep)
	if m.ProfiledSteps == 0 {
		return nil
	}
	fmt.Fprintf(w, "\nkernel families over %d profiled steps (each kernel synchronised; median step %.2f ms, CPU %.2f ms per step)\n", m.ProfiledSteps, m.ProfiledStepMS, m.ProfiledStepCPUMS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "family\tfwd ms\tbwd ms\tupdate ms\ttotal ms\tshare\tCPU ms\tCPU share\tcalls/step\t")
	for _, f := range m.Families {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.1f%%\t%.2f\t%.1f%%\t%.0f\t\n", f.Family, f.ForwardMS, f.BackwardMS, f.UpdateMS, f.TotalMS, f.Share, f.CPUMS, f.CPUShare, f.CallsPerStep)
	}
	return tw.Flush()
}
