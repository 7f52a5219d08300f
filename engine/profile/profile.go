// Package profile times the engine's kernels by family on any device: a
// backend.Backend that wraps another, passes every call through and, while
// it is started, adds each call's duration to its family (convolution,
// depthwise, batch norm, activations, …) and to the phase the caller is in
// (forward, backward, update), in wall time and in the process's CPU time
// (all threads: on a machine shared with other work it moves far less than
// wall time). On an asynchronous device each timed kernel
// is followed by Sync, so the time is the kernel's own; that serialises the
// device, so profiled steps are slower than plain ones and are timed apart
// from them.
//
// A program installs the wrapper as the default device before it builds
// its model, so that every tensor lives on it:
//
//	prof := profile.Wrap(engine.Device())
//	backend.UseBackend(prof)
//	… build the model …
//	prof.Start()
//	prof.SetPhase(profile.Forward) … prof.SetPhase(profile.Backward) …
//	prof.Stop()
//	report := prof.Report()
//
// Stopped, the wrapper costs one atomic load per kernel.
package profile

import (
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gidedge/gidedge/engine/backend"
)

// Family is a group of kernels reported together.
type Family string

// Kernel families. Convolutions are split by shape because their costs
// differ in kind: spatial convolutions and 1×1 convolutions are GEMMs,
// depthwise convolutions are memory-bound loops.
const (
	Conv        Family = "conv"       // spatial, non-depthwise Conv2d and its backward
	Conv1x1     Family = "conv 1×1"   // 1×1 Conv2d
	Depthwise   Family = "depthwise"  // Groups == C == Cout
	BatchNorm   Family = "batch norm" // BatchNorm and its backward
	Activation  Family = "activation" // ReLU, ReLU6 (clamp), leaky ReLU, sigmoid, SiLU, hardswish, tanh
	Elementwise Family = "elementwise"
	Reduce      Family = "reduce" // Reduce, Softmax
	Gemm        Family = "gemm"   // Gemm (MatMul)
	Pool        Family = "pool"
	Upsample    Family = "upsample"
	Copy        Family = "copy" // Copy, Gather, ScatterAdd: permutes, slices, concatenation, indexing
	ROIAlign    Family = "roialign"
	Loss        Family = "loss"      // Loss, PairwiseDistance and their backward
	Optimizer   Family = "optimizer" // AdamW, SGD
	Memory      Family = "memory"    // Alloc, Free, Fill
	Host        Family = "host"      // FromHost, ToHost, Sync
)

// Phase is the part of a training step the caller says it is in.
type Phase uint8

// Phases.
const (
	Forward Phase = iota
	Backward
	Update
	phases
)

var phaseNames = [phases]string{"forward", "backward", "update"}

func (p Phase) String() string {
	if p < phases {
		return phaseNames[p]
	}
	return "phase?"
}

// Backend is the timing decorator. Its buffers are the wrapped backend's.
type Backend struct {
	inner backend.Backend
	on    atomic.Bool
	phase atomic.Uint32

	mu    sync.Mutex
	stats map[Family]*[phases]entry
}

type entry struct {
	calls     int64
	wall, cpu time.Duration
}

var (
	_ backend.Backend         = (*Backend)(nil)
	_ backend.ActivationFuser = (*Backend)(nil)
)

// Wrap returns a stopped decorator around inner.
func Wrap(inner backend.Backend) *Backend {
	return &Backend{inner: inner, stats: map[Family]*[phases]entry{}}
}

// Inner is the wrapped backend.
func (p *Backend) Inner() backend.Backend { return p.inner }

// Start begins timing kernels.
func (p *Backend) Start() { p.on.Store(true) }

// Stop ends timing; the figures are kept until Reset.
func (p *Backend) Stop() { p.on.Store(false) }

// Reset forgets every figure.
func (p *Backend) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = map[Family]*[phases]entry{}
}

// SetPhase attributes the kernels called from now on to ph.
func (p *Backend) SetPhase(ph Phase) { p.phase.Store(uint32(ph)) }

// Row is one family's figures per phase: calls, wall time and the
// process's CPU time during them (a CPU backend's kernel keeps all its
// workers busy, so CPU time is about workers × wall time).
type Row struct {
	Family Family
	Calls  [phases]int64
	Time   [phases]time.Duration
	CPU    [phases]time.Duration
}

// Total is the family's wall time over all phases.
func (r Row) Total() time.Duration { return sum(r.Time) }

// TotalCPU is the family's CPU time over all phases.
func (r Row) TotalCPU() time.Duration { return sum(r.CPU) }

func sum(ds [phases]time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// CPUTime is the CPU time (user + system) this process has used, over all
// its threads; 0 when the system cannot say.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Report returns the families timed so far, the most expensive first.
func (p *Backend) Report() []Row {
	p.mu.Lock()
	defer p.mu.Unlock()
	rows := make([]Row, 0, len(p.stats))
	for f, e := range p.stats {
		r := Row{Family: f}
		for ph := range e {
			r.Calls[ph], r.Time[ph], r.CPU[ph] = e[ph].calls, e[ph].wall, e[ph].cpu
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if a, b := rows[i].Total(), rows[j].Total(); a != b {
			return a > b
		}
		return rows[i].Family < rows[j].Family
	})
	return rows
}

// timed runs fn and, when started, adds its duration (after a Sync) to f.
func (p *Backend) timed(f Family, fn func()) {
	if !p.on.Load() {
		fn()
		return
	}
	c0, t0 := CPUTime(), time.Now()
	fn()
	_ = p.inner.Sync() // an asynchronous error surfaces at the caller's next Sync or ToHost
	d, c := time.Since(t0), CPUTime()-c0
	ph := Phase(p.phase.Load())
	if ph >= phases {
		ph = Forward
	}
	p.mu.Lock()
	e := p.stats[f]
	if e == nil {
		e = new([phases]entry)
		p.stats[f] = e
	}
	e[ph].calls++
	e[ph].wall += d
	e[ph].cpu += c
	p.mu.Unlock()
}

// convFamily classifies a convolution by its geometry.
func convFamily(g backend.ConvGeometry) Family {
	switch {
	case g.Groups == g.C && g.Cout == g.C && g.Groups > 1:
		return Depthwise
	case g.KernelH == 1 && g.KernelW == 1:
		return Conv1x1
	}
	return Conv
}

// unaryFamily separates activations from other pointwise functions.
func unaryFamily(op backend.UnaryOp) Family {
	switch op {
	case backend.UnaryReLU, backend.UnaryClamp, backend.UnaryLeakyReLU, backend.UnarySigmoid,
		backend.UnarySiLU, backend.UnaryHardSwish, backend.UnaryTanh:
		return Activation
	}
	return Elementwise
}

// FusesActivation implements backend.ActivationFuser as the wrapped
// backend does (false when it fuses nothing).
func (p *Backend) FusesActivation(op backend.UnaryOp) bool {
	f, ok := p.inner.(backend.ActivationFuser)
	return ok && f.FusesActivation(op)
}

// Name implements backend.Backend: the wrapped device's name.
func (p *Backend) Name() string { return p.inner.Name() }

// Describe implements backend.Backend.
func (p *Backend) Describe() string { return p.inner.Describe() + " (kernels timed by family)" }

// Alloc implements backend.Backend.
func (p *Backend) Alloc(dtype backend.DType, n int) backend.Buffer {
	var b backend.Buffer
	p.timed(Memory, func() { b = p.inner.Alloc(dtype, n) })
	return b
}

// Free implements backend.Backend.
func (p *Backend) Free(b backend.Buffer) { p.timed(Memory, func() { p.inner.Free(b) }) }

// FromHost implements backend.Backend.
func (p *Backend) FromHost(dst backend.Buffer, src []float32) {
	p.timed(Host, func() { p.inner.FromHost(dst, src) })
}

// FromHostInt32 implements backend.Backend.
func (p *Backend) FromHostInt32(dst backend.Buffer, src []int32) {
	p.timed(Host, func() { p.inner.FromHostInt32(dst, src) })
}

// ToHost implements backend.Backend.
func (p *Backend) ToHost(dst []float32, src backend.Buffer) {
	p.timed(Host, func() { p.inner.ToHost(dst, src) })
}

// Sync implements backend.Backend.
func (p *Backend) Sync() error {
	var err error
	p.timed(Host, func() { err = p.inner.Sync() })
	return err
}

// MemStats implements backend.Backend.
func (p *Backend) MemStats() backend.MemStats { return p.inner.MemStats() }

// Fill implements backend.Backend.
func (p *Backend) Fill(dst backend.Buffer, v float32) {
	p.timed(Memory, func() { p.inner.Fill(dst, v) })
}

// Copy implements backend.Backend.
func (p *Backend) Copy(a backend.CopyArgs) { p.timed(Copy, func() { p.inner.Copy(a) }) }

// Gather implements backend.Backend.
func (p *Backend) Gather(a backend.GatherArgs) { p.timed(Copy, func() { p.inner.Gather(a) }) }

// ScatterAdd implements backend.Backend.
func (p *Backend) ScatterAdd(a backend.GatherArgs) { p.timed(Copy, func() { p.inner.ScatterAdd(a) }) }

// Unary implements backend.Backend.
func (p *Backend) Unary(a backend.UnaryArgs) { p.timed(unaryFamily(a.Op), func() { p.inner.Unary(a) }) }

// UnaryBackward implements backend.Backend.
func (p *Backend) UnaryBackward(a backend.UnaryBackwardArgs) {
	p.timed(unaryFamily(a.Op), func() { p.inner.UnaryBackward(a) })
}

// Binary implements backend.Backend.
func (p *Backend) Binary(a backend.BinaryArgs) { p.timed(Elementwise, func() { p.inner.Binary(a) }) }

// Where implements backend.Backend.
func (p *Backend) Where(a backend.WhereArgs) { p.timed(Elementwise, func() { p.inner.Where(a) }) }

// Reduce implements backend.Backend.
func (p *Backend) Reduce(a backend.ReduceArgs) { p.timed(Reduce, func() { p.inner.Reduce(a) }) }

// Softmax implements backend.Backend.
func (p *Backend) Softmax(a backend.SoftmaxArgs) { p.timed(Reduce, func() { p.inner.Softmax(a) }) }

// SoftmaxBackward implements backend.Backend.
func (p *Backend) SoftmaxBackward(a backend.SoftmaxBackwardArgs) {
	p.timed(Reduce, func() { p.inner.SoftmaxBackward(a) })
}

// Gemm implements backend.Backend.
func (p *Backend) Gemm(a backend.GemmArgs) { p.timed(Gemm, func() { p.inner.Gemm(a) }) }

// Conv2d implements backend.Backend.
func (p *Backend) Conv2d(a backend.ConvArgs) {
	p.timed(convFamily(a.Geometry), func() { p.inner.Conv2d(a) })
}

// Conv2dBackward implements backend.Backend.
func (p *Backend) Conv2dBackward(a backend.ConvBackwardArgs) {
	p.timed(convFamily(a.Geometry), func() { p.inner.Conv2dBackward(a) })
}

// BatchNorm implements backend.Backend.
func (p *Backend) BatchNorm(a backend.BatchNormArgs) {
	p.timed(BatchNorm, func() { p.inner.BatchNorm(a) })
}

// BatchNormBackward implements backend.Backend.
func (p *Backend) BatchNormBackward(a backend.BatchNormBackwardArgs) {
	p.timed(BatchNorm, func() { p.inner.BatchNormBackward(a) })
}

// Pool2d implements backend.Backend.
func (p *Backend) Pool2d(a backend.PoolArgs) { p.timed(Pool, func() { p.inner.Pool2d(a) }) }

// Pool2dBackward implements backend.Backend.
func (p *Backend) Pool2dBackward(a backend.PoolBackwardArgs) {
	p.timed(Pool, func() { p.inner.Pool2dBackward(a) })
}

// Upsample implements backend.Backend.
func (p *Backend) Upsample(a backend.UpsampleArgs) { p.timed(Upsample, func() { p.inner.Upsample(a) }) }

// UpsampleBackward implements backend.Backend.
func (p *Backend) UpsampleBackward(a backend.UpsampleBackwardArgs) {
	p.timed(Upsample, func() { p.inner.UpsampleBackward(a) })
}

// ResizeLinear implements backend.Backend; it counts with upsampling.
func (p *Backend) ResizeLinear(a backend.ResizeLinearArgs) {
	p.timed(Upsample, func() { p.inner.ResizeLinear(a) })
}

// ResizeLinearBackward implements backend.Backend.
func (p *Backend) ResizeLinearBackward(a backend.ResizeLinearBackwardArgs) {
	p.timed(Upsample, func() { p.inner.ResizeLinearBackward(a) })
}

// ROIAlign implements backend.Backend.
func (p *Backend) ROIAlign(a backend.ROIAlignArgs) { p.timed(ROIAlign, func() { p.inner.ROIAlign(a) }) }

// ROIAlignBackward implements backend.Backend.
func (p *Backend) ROIAlignBackward(a backend.ROIAlignBackwardArgs) {
	p.timed(ROIAlign, func() { p.inner.ROIAlignBackward(a) })
}

// Loss implements backend.Backend.
func (p *Backend) Loss(a backend.LossArgs) { p.timed(Loss, func() { p.inner.Loss(a) }) }

// LossBackward implements backend.Backend.
func (p *Backend) LossBackward(a backend.LossBackwardArgs) {
	p.timed(Loss, func() { p.inner.LossBackward(a) })
}

// PairwiseDistance implements backend.Backend.
func (p *Backend) PairwiseDistance(a backend.PairwiseDistanceArgs) {
	p.timed(Loss, func() { p.inner.PairwiseDistance(a) })
}

// PairwiseDistanceBackward implements backend.Backend.
func (p *Backend) PairwiseDistanceBackward(a backend.PairwiseDistanceBackwardArgs) {
	p.timed(Loss, func() { p.inner.PairwiseDistanceBackward(a) })
}

// AdamW implements backend.Backend.
func (p *Backend) AdamW(a backend.AdamWArgs) { p.timed(Optimizer, func() { p.inner.AdamW(a) }) }

// SGD implements backend.Backend.
func (p *Backend) SGD(a backend.SGDArgs) { p.timed(Optimizer, func() { p.inner.SGD(a) }) }
