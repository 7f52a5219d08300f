package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/backend"
	"github.com/gidedge/gidedge/engine/cpu"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/engine/optim"
	"github.com/gidedge/gidedge/engine/profile"
	"github.com/gidedge/gidedge/internal/hostinfo"
)

func init() { registerBench(newBenchEngineCmd) }

// benchEngineOptions configures `gidedge bench engine`.
type benchEngineOptions struct {
	JSON   bool
	Steps  int // timed training steps (median reported)
	Warmup int // untimed steps first
	Batch  int
	Size   int // input height and width; 0: 128 for the probe, 160 for a model
	Seed   uint64
	// Model, when set, names a detector config to time instead of the probe.
	Model string
	// Classes is the class count of the model's head.
	Classes int
	// ProfileSteps are extra model steps with every kernel timed by family.
	ProfileSteps int
	// CPUProfile, when set, receives a pprof CPU profile of the timed
	// training steps.
	CPUProfile string
}

func newBenchEngineCmd() *cobra.Command {
	opts := benchEngineOptions{Steps: 20, Warmup: 3, Batch: 8, Seed: 1, Classes: 6, ProfileSteps: 5}
	cmd := &cobra.Command{
		Use:   "engine",
		Short: "Time the training engine on the probe network or a named detector",
		Long: `Without --model, runs the probe network: input 8×3×128×128, four stages of 16,
32, 64 and 128 channels, each conv3×3 stride 2 (+bias) → ReLU → conv3×3 stride 1
(+bias) → ReLU, loss = mean of the squared output, AdamW (lr 1e-3, weight decay 0).
Reports forward and training-step time (median after warm-up), achieved GFLOP/s,
the machine's own cblas_sgemm 1024³ rate measured in the same run, a per-layer
table, and the bytes a steady-state training step allocates.

With --model (a named config such as retinanet-student or retinanet-teacher),
times that detector at --size px, batch --batch, with --classes classes and 4
random boxes per image: the inference forward and the training step as
'gidedge train' runs it (forward, detection loss with anchor assignment on the
host, backward, gradient clipping, AdamW with the config's learning rate and
weight decay). Then --profile-steps more steps run with every kernel timed (and
synchronised, on an asynchronous device) and the step is broken down by kernel
family (conv, conv 1×1, depthwise, batch norm, activation, elementwise, copy,
reduce, loss, optimizer, memory, host, …) and by phase. benchmarks/
detector_pytorch.py is the same network in PyTorch.`,
		Example: `  gidedge bench engine
  gidedge bench engine --json
  gidedge bench engine --steps 50 --warmup 5
  gidedge bench engine --model retinanet-student --size 160 --batch 8
  gidedge bench engine --model retinanet-teacher --json --cpuprofile /tmp/teacher.prof`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchEngine(cmd.Context(), opts, cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.JSON, "json", false, "print one JSON object instead of tables")
	f.IntVar(&opts.Steps, "steps", opts.Steps, "timed training steps (at least 10)")
	f.IntVar(&opts.Warmup, "warmup", opts.Warmup, "untimed warm-up steps")
	f.StringVar(&opts.CPUProfile, "cpuprofile", "", "write a pprof CPU profile of the timed training steps to this file")
	f.StringVar(&opts.Model, "model", "", "time this named detector config instead of the probe network")
	f.IntVar(&opts.Size, "size", 0, "input height and width (default 128 for the probe, 160 for --model)")
	f.IntVar(&opts.Batch, "batch", opts.Batch, "images per step")
	f.IntVar(&opts.Classes, "classes", opts.Classes, "classes of the --model head")
	f.IntVar(&opts.ProfileSteps, "profile-steps", opts.ProfileSteps, "extra --model steps timed kernel by kernel for the family shares (0: none)")
	return withDevice(cmd)
}

// probeStage is one conv3×3 + bias + ReLU layer of the probe network.
type probeLayer struct {
	name          string
	conv          *nn.Conv2d
	in, out       int
	stride        int
	inH, outH     int
	forwardFLOPs  float64
	backwardFLOPs float64
}

type probeNet struct{ layers []*probeLayer }

func (p *probeNet) Visit(prefix string, v nn.Visitor) {
	for _, l := range p.layers {
		l.conv.Visit(nn.Join(prefix, l.name), v)
	}
}

func (p *probeNet) forward(x *engine.Tensor) *engine.Tensor {
	for _, l := range p.layers {
		x = engine.ReLU(l.conv.Forward(x))
	}
	return x
}

// infer runs the network without a graph, recycling each intermediate.
func (p *probeNet) infer(x *engine.Tensor) *engine.Tensor {
	in := x
	for _, l := range p.layers {
		c := l.conv.Forward(in)
		y := engine.ReLU(c)
		engine.Recycle(c)
		if in != x {
			engine.Recycle(in)
		}
		in = y
	}
	return in
}

func newProbeNet(rng *rand.Rand, batch, size int) *probeNet {
	p := &probeNet{}
	in, h := 3, size
	for s, ch := range []int{16, 32, 64, 128} {
		for k, stride := range []int{2, 1} {
			outH := engine.ConvOutSize(h, 3, stride, 1, 1)
			l := &probeLayer{
				name: fmt.Sprintf("stage%d.conv%d", s+1, k+1),
				conv: nn.NewConv2d(rng, nn.ConvConfig{In: in, Out: ch, Kernel: 3, Stride: stride, Pad: 1, Bias: true}),
				in:   in, out: ch, stride: stride, inH: h, outH: outH,
			}
			macs := float64(batch) * float64(ch*outH*outH) * float64(in*9)
			l.forwardFLOPs = 2 * macs
			l.backwardFLOPs = 2 * macs // weight gradient
			if len(p.layers) > 0 {
				l.backwardFLOPs += 2 * macs // input gradient (the image needs none)
			}
			p.layers = append(p.layers, l)
			in, h = ch, outH
		}
	}
	return p
}

// benchLayer is one row of the per-layer table.
type benchLayer struct {
	Name       string  `json:"name"`
	Shape      string  `json:"shape"`
	ForwardMS  float64 `json:"forward_ms"`
	BackwardMS float64 `json:"backward_ms"`
	GFLOPS     float64 `json:"gflops"`
	PctOfSgemm float64 `json:"pct_of_sgemm"`
	ForwardGF  float64 `json:"forward_gflop"`
	BackwardGF float64 `json:"backward_gflop"`
}

type benchProbe struct {
	Input             []int   `json:"input"`
	ForwardMS         float64 `json:"forward_ms"`
	TrainForwardMS    float64 `json:"train_forward_ms"`
	BackwardMS        float64 `json:"backward_ms"`
	UpdateMS          float64 `json:"update_ms"`
	TrainStepMS       float64 `json:"train_step_ms"`
	TrainStepMinMS    float64 `json:"train_step_min_ms"`
	GFLOPS            float64 `json:"gflops"`
	ForwardGFLOPS     float64 `json:"forward_gflops"`
	StepGFLOP         float64 `json:"step_gflop"`
	Steps             int     `json:"steps"`
	AllocBytesPerStep int64   `json:"alloc_bytes_per_step"`
	PoolFreshPerStep  int64   `json:"pool_fresh_bytes_per_step"`
	// ToHostPerStep and FromHostPerStep count host transfers per step.
	ToHostPerStep   float64 `json:"to_host_per_step"`
	FromHostPerStep float64 `json:"from_host_per_step"`
	Loss            float32 `json:"final_loss"`
	// CPUMSPerStep is the process's CPU time per step over all cores: less
	// sensitive than wall time to other processes sharing the machine.
	CPUMSPerStep float64 `json:"cpu_ms_per_step"`
	// PctOfSgemm is the train step's GFLOP/s relative to sgemm_gflops.
	PctOfSgemm float64 `json:"pct_of_sgemm"`
}

type benchEngineResult struct {
	Date         string `json:"date"`
	CPU          string `json:"cpu"`
	Cores        int    `json:"cores"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	Backend      string `json:"backend"`
	Device       string `json:"device"`
	Workers      int    `json:"workers"`
	OpenBLAS     string `json:"openblas"`
	OpenBLASCore string `json:"openblas_core"`
	// OpenBLASChoice says why gidedge chose the core when OpenBLAS's own
	// detection fell back to pre-AVX2 kernels (empty otherwise).
	OpenBLASChoice string       `json:"openblas_core_choice,omitempty"`
	LoadAverage    string       `json:"load_average,omitempty"`     // 1, 5 and 15 min, at start
	LoadAverageEnd string       `json:"load_average_end,omitempty"` // and at the end
	Probe          *benchProbe  `json:"probe,omitempty"`
	Model          *benchModel  `json:"model,omitempty"`
	SgemmGFLOPS    float64      `json:"sgemm_gflops"`
	SgemmThreads   int          `json:"sgemm_threads"`
	Layers         []benchLayer `json:"layers,omitempty"`
}

func runBenchEngine(ctx context.Context, opts benchEngineOptions, stdout io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if opts.Steps < 10 {
		return fmt.Errorf("bench engine: --steps %d: the median needs at least 10 steps", opts.Steps)
	}
	if opts.Size == 0 {
		opts.Size = 128
		if opts.Model != "" {
			opts.Size = 160
		}
	}
	if opts.Warmup < 1 || opts.Batch < 1 || opts.Size < 16 {
		return fmt.Errorf("bench engine: warm-up %d, batch %d and size %d must be at least 1, 1 and 16", opts.Warmup, opts.Batch, opts.Size)
	}
	if opts.Model != "" && (opts.Classes < 1 || opts.ProfileSteps < 0) {
		return fmt.Errorf("bench engine: --classes %d must be at least 1 and --profile-steps %d at least 0", opts.Classes, opts.ProfileSteps)
	}
	dev := engine.Device()
	res := benchEngineResult{
		Date:        time.Now().UTC().Format(time.RFC3339),
		CPU:         hostinfo.ReadCPU().Model,
		Cores:       runtime.NumCPU(),
		GOMAXPROCS:  runtime.GOMAXPROCS(0),
		Backend:     dev.Name(),
		Device:      dev.Describe(),
		Workers:     1,
		OpenBLAS:    cpu.OpenBLASConfig(),
		LoadAverage: hostinfo.LoadAverage(),
	}
	res.OpenBLASCore, res.OpenBLASChoice = cpu.OpenBLASCore(), cpu.OpenBLASCoreChoice()
	if w, ok := dev.(interface{ Workers() int }); ok {
		res.Workers = w.Workers()
	}
	if opts.Model != "" {
		m, err := benchModelNet(ctx, opts)
		if err != nil {
			return err
		}
		res.Model = &m
		res.SgemmThreads = runtime.NumCPU()
		res.SgemmGFLOPS = benchSgemm(res.SgemmThreads)
		res.LoadAverageEnd = hostinfo.LoadAverage()
		if opts.JSON {
			return writeJSON(stdout, res)
		}
		return printBenchModel(stdout, res)
	}
	probe, err := benchProbeNet(ctx, opts)
	if err != nil {
		return err
	}
	res.Probe = &probe
	res.SgemmThreads = runtime.NumCPU()
	res.SgemmGFLOPS = benchSgemm(res.SgemmThreads)
	res.Probe.PctOfSgemm = 100 * res.Probe.GFLOPS / res.SgemmGFLOPS
	if res.Layers, err = benchLayers(ctx, opts, res.SgemmGFLOPS); err != nil {
		return err
	}
	res.LoadAverageEnd = hostinfo.LoadAverage()
	if opts.JSON {
		return writeJSON(stdout, res)
	}
	return printBenchEngine(stdout, res)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

func benchProbeNet(ctx context.Context, opts benchEngineOptions) (benchProbe, error) {
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed+1))
	net := newProbeNet(rng, opts.Batch, opts.Size)
	x := engine.RandN(rng, 1, opts.Batch, 3, opts.Size, opts.Size)
	opt, err := optim.NewAdamW(nn.Params(net), optim.AdamWConfig{LR: 1e-3})
	if err != nil {
		return benchProbe{}, err
	}
	var fwdFLOPs, stepFLOPs float64
	for _, l := range net.layers {
		fwdFLOPs += l.forwardFLOPs
		stepFLOPs += l.forwardFLOPs + l.backwardFLOPs
	}
	p := benchProbe{Input: x.Shape(), Steps: opts.Steps, StepGFLOP: stepFLOPs / 1e9}

	var fwd, bwd, upd, step []float64
	var lastLoss float32
	trainStep := func(timed bool) {
		t0 := time.Now()
		y := net.forward(x)
		loss := engine.Mean(engine.Mul(y, y))
		t1 := time.Now()
		opt.ZeroGrad()
		loss.Backward()
		t2 := time.Now()
		opt.Step()
		t3 := time.Now()
		lastLoss = loss.Item()
		loss.Release()
		if timed {
			fwd = append(fwd, ms(t1.Sub(t0)))
			bwd = append(bwd, ms(t2.Sub(t1)))
			upd = append(upd, ms(t3.Sub(t2)))
			step = append(step, ms(t3.Sub(t0)))
		}
	}
	for i := 0; i < opts.Warmup; i++ {
		trainStep(false)
	}
	stop, err := startCPUProfile(opts.CPUProfile)
	if err != nil {
		return p, err
	}
	defer stop()
	// Allocation and CPU time are counted over the timed steps alone. The
	// sgemm reference runs after the probe: OpenBLAS's worker threads spin
	// for a while after a multi-threaded call and would steal the steps' CPU.
	var costs stepCosts
	for i := 0; i < opts.Steps; i++ {
		if err := ctx.Err(); err != nil {
			return p, fmt.Errorf("bench engine: %w", err)
		}
		_ = costs.measure(func() error { trainStep(true); return nil })
	}
	p.ToHostPerStep, p.FromHostPerStep, p.AllocBytesPerStep, p.PoolFreshPerStep, p.CPUMSPerStep = costs.perStep()
	p.TrainForwardMS, p.BackwardMS, p.UpdateMS = median(fwd), median(bwd), median(upd)
	p.TrainStepMS = median(step)
	p.TrainStepMinMS = slices.Min(step)
	p.GFLOPS = stepFLOPs / (p.TrainStepMS * 1e6)
	p.Loss = lastLoss

	// Inference forward (no tape), as a deployed model runs.
	var inf []float64
	for i := 0; i < opts.Warmup+opts.Steps; i++ {
		engine.NoGrad(func() {
			t0 := time.Now()
			y := net.infer(x)
			d := time.Since(t0)
			if i >= opts.Warmup {
				inf = append(inf, ms(d))
			}
			engine.Recycle(y)
		})
	}
	p.ForwardMS = median(inf)
	p.ForwardGFLOPS = fwdFLOPs / (p.ForwardMS * 1e6)
	return p, nil
}

// sgemmProbe times cblas_sgemm on 1024³ with OpenBLAS's own threads (the
// CPU backend with one worker), then restores the engine's single-threaded
// BLAS. It measures the machine, whatever device the engine runs on.
type sgemmProbe struct {
	threads int
	be      *cpu.Backend
	a, b, c backend.Buffer
	times   []float64 // GFLOP/s per sample
}

const sgemmN = 1024

func newSgemmProbe(threads int) *sgemmProbe {
	rng := rand.New(rand.NewPCG(3, 4))
	s := &sgemmProbe{threads: threads, be: cpu.New(1)}
	fill := func() backend.Buffer {
		v := make([]float32, sgemmN*sgemmN)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		b := s.be.Alloc(backend.Float32, len(v))
		s.be.FromHost(b, v)
		return b
	}
	s.a, s.b, s.c = fill(), fill(), fill()
	return s
}

// sample runs one multiplication and returns its GFLOP/s.
func (s *sgemmProbe) sample() float64 {
	cpu.SetBLASThreads(s.threads)
	defer cpu.SetBLASThreads(1)
	m := func(b backend.Buffer) backend.Matrix { return backend.Matrix{Buf: b, LD: sgemmN} }
	t0 := time.Now()
	s.be.Gemm(backend.GemmArgs{M: sgemmN, N: sgemmN, K: sgemmN, Batch: 1, Alpha: 1, A: m(s.a), B: m(s.b), C: m(s.c)})
	gf := 2 * sgemmN * sgemmN * sgemmN / (ms(time.Since(t0)) * 1e6)
	s.times = append(s.times, gf)
	return gf
}

// benchSgemm returns the median of ten sgemm samples after two warm-ups.
func benchSgemm(threads int) float64 {
	s := newSgemmProbe(threads)
	for i := 0; i < 12; i++ {
		s.sample()
	}
	return median(s.times[2:])
}

// benchLayers times each probe layer (conv + bias + ReLU) alone on an input
// of its real size: forward with the tape, and backward from a random
// upstream gradient.
func benchLayers(ctx context.Context, opts benchEngineOptions, sgemm float64) ([]benchLayer, error) {
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed+1))
	net := newProbeNet(rng, opts.Batch, opts.Size)
	reps := max(opts.Steps/2, 5)
	var rows []benchLayer
	for i, l := range net.layers {
		x := engine.RandN(rng, 1, opts.Batch, l.in, l.inH, l.inH)
		if i > 0 {
			x.SetRequiresGrad(true)
		}
		gy := engine.RandN(rng, 1, opts.Batch, l.out, l.outH, l.outH)
		var fwd, bwd []float64
		for r := 0; r < reps+2; r++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("bench engine: %w", err)
			}
			x.ZeroGrad()
			nn.ZeroGrad(l.conv)
			t0 := time.Now()
			y := engine.ReLU(l.conv.Forward(x))
			t1 := time.Now()
			y.BackwardWith(gy)
			t2 := time.Now()
			y.Release()
			if r >= 2 {
				fwd = append(fwd, ms(t1.Sub(t0)))
				bwd = append(bwd, ms(t2.Sub(t1)))
			}
		}
		row := benchLayer{
			Name:       l.name,
			Shape:      fmt.Sprintf("%d→%d s%d %d²→%d²", l.in, l.out, l.stride, l.inH, l.outH),
			ForwardMS:  median(fwd),
			BackwardMS: median(bwd),
			ForwardGF:  l.forwardFLOPs / 1e9,
			BackwardGF: l.backwardFLOPs / 1e9,
		}
		row.GFLOPS = (l.forwardFLOPs + l.backwardFLOPs) / ((row.ForwardMS + row.BackwardMS) * 1e6)
		if sgemm > 0 {
			row.PctOfSgemm = 100 * row.GFLOPS / sgemm
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func printBenchEngine(w io.Writer, r benchEngineResult) error {
	p := *r.Probe
	fmt.Fprintf(w, "engine benchmark  %s  %s, %d cores, device %s\n", r.Date, r.CPU, r.Cores, r.Device)
	fmt.Fprintf(w, "OpenBLAS: %s\n", r.OpenBLAS)
	if r.LoadAverage != "" {
		fmt.Fprintf(w, "load average at start: %s, at end: %s (other processes share these cores)\n", r.LoadAverage, r.LoadAverageEnd)
	}
	fmt.Fprintf(w, "\nprobe network %v, AdamW lr 1e-3 (median of %d steps)\n", p.Input, p.Steps)
	fmt.Fprintf(w, "  forward (inference)  %8.2f ms  %6.1f GFLOP/s\n", p.ForwardMS, p.ForwardGFLOPS)
	fmt.Fprintf(w, "  train step           %8.2f ms  %6.1f GFLOP/s  (min %.2f ms; %.2f GFLOP per step)\n", p.TrainStepMS, p.GFLOPS, p.TrainStepMinMS, p.StepGFLOP)
	fmt.Fprintf(w, "    forward %.2f ms, backward %.2f ms, update %.2f ms\n", p.TrainForwardMS, p.BackwardMS, p.UpdateMS)
	fmt.Fprintf(w, "    CPU time %.2f ms per step (all cores)\n", p.CPUMSPerStep)
	fmt.Fprintf(w, "  allocated per step   %8.1f KiB  (device allocator misses %.1f KiB)\n", float64(p.AllocBytesPerStep)/1024, float64(p.PoolFreshPerStep)/1024)
	fmt.Fprintf(w, "  host transfers       %8.1f reads, %.1f writes per step\n", p.ToHostPerStep, p.FromHostPerStep)
	fmt.Fprintf(w, "cblas_sgemm 1024³ (%d threads): %.1f GFLOP/s; the train step reaches %.0f%% of it\n\n", r.SgemmThreads, r.SgemmGFLOPS, p.PctOfSgemm)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "layer\tshape\tfwd ms\tbwd ms\tGFLOP/s\t% sgemm\t")
	for _, l := range r.Layers {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.1f\t%.0f%%\t\n", l.Name, l.Shape, l.ForwardMS, l.BackwardMS, l.GFLOPS, l.PctOfSgemm)
	}
	return tw.Flush()
}

// startCPUProfile starts a pprof CPU profile written to path ("" for none);
// stop ends it and closes the file.
func startCPUProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench engine: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench engine: cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// stepCosts sums what timed steps cost besides their wall time: Go heap
// allocated, bytes the device pool had to allocate afresh, host transfers
// and the process's CPU time.
type stepCosts struct {
	steps, allocBytes, freshBytes, hostReads, hostWrites int64
	cpu                                                  time.Duration
}

// measure runs one step and adds its costs.
func (c *stepCosts) measure(step func() error) error {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	stats0 := engine.ReadStats()
	cpu0 := profile.CPUTime()
	err := step()
	c.cpu += profile.CPUTime() - cpu0
	stats1 := engine.ReadStats()
	runtime.ReadMemStats(&after)
	c.steps++
	c.allocBytes += int64(after.TotalAlloc - before.TotalAlloc)
	c.freshBytes += stats1.Memory.FreshBytes - stats0.Memory.FreshBytes
	c.hostReads += stats1.ToHostCalls - stats0.ToHostCalls
	c.hostWrites += stats1.FromHostCalls - stats0.FromHostCalls
	return err
}

// perStep returns the means per step: host reads and uploads, bytes
// allocated and allocated afresh, CPU milliseconds.
func (c stepCosts) perStep() (toHost, fromHost float64, alloc, fresh int64, cpuMS float64) {
	n := max(c.steps, 1)
	return float64(c.hostReads) / float64(n), float64(c.hostWrites) / float64(n), c.allocBytes / n, c.freshBytes / n, ms(c.cpu) / float64(n)
}
