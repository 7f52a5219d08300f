package quantize

import (
	"context"
	"fmt"
	"math"
	"os"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// DefaultEqualizeStrength is the migration strength α of channel
// equalization: each channel's scale is a^α / w^(1−α) (activation range a,
// range of the weights that read it w), as SmoothQuant (Xiao et al., 2023)
// balances the two; 0.5 splits the difficulty evenly.
const DefaultEqualizeStrength = 0.5

// equalizeStatImages is how many calibration images measure the
// per-channel ranges equalization needs.
const equalizeStatImages = 32

// ChannelStats holds, per 4-D activation tensor of a float model, the
// largest |x| of each channel over some images.
type ChannelStats map[string][]float64

// collectChannelStats runs the float model over the inputs with every
// float activation exposed and keeps each NCHW tensor's per-channel max |x|.
func collectChannelStats(ctx context.Context, m *onnxpb.ModelProto, input string, shape []int64, inputs [][]float32, threads int) (ChannelStats, error) {
	g := m.Graph
	ix := onnxgraph.NewIndex(g)
	isFloat := floatTensors(g, ix)
	var names []string
	seen := map[string]bool{}
	for _, n := range g.Node {
		for _, o := range n.Output {
			if o != "" && isFloat[o] && !seen[o] && !ix.IsConstant(o) {
				seen[o] = true
				names = append(names, o)
			}
		}
	}
	exposed, err := onnxgraph.ExposeOutputs(m, names, onnxgraph.Float32)
	if err != nil {
		return nil, fmt.Errorf("quantize: equalize: %w", err)
	}
	r, err := newRunner(exposed, input, shape, names, runnerOptions{Threads: threads})
	if err != nil {
		return nil, err
	}
	defer r.close()
	stats := ChannelStats{}
	for _, x := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("quantize: equalize: %w", err)
		}
		outs, shapes, err := r.runShaped(x)
		if err != nil {
			return nil, err
		}
		for i, name := range names {
			s := shapes[i]
			if len(s) != 4 || s[0] != 1 || s[1] <= 0 {
				continue
			}
			c := int(s[1])
			hw := len(outs[i]) / c
			cur := stats[name]
			if cur == nil {
				cur = make([]float64, c)
				stats[name] = cur
			}
			if len(cur) != c {
				continue
			}
			for ch := range c {
				for _, v := range outs[i][ch*hw : (ch+1)*hw] {
					cur[ch] = math.Max(cur[ch], math.Abs(float64(v)))
				}
			}
		}
	}
	return stats, nil
}

// EqualizeResult says what Equalize changed.
type EqualizeResult struct {
	// Groups counts the sets of channels that must share one scale (linked
	// through Add, Concat, pooling, resizing and SiLU) and Free those not
	// pinned by an op that cannot absorb a scale.
	Groups, Free int
	// Tensors counts the activations with at least one rescaled channel,
	// SiLUs the SiLU gates rewritten to read the rescaled tensor.
	Tensors, SiLUs int
	// Spread is the largest ratio of channel ranges within one tensor
	// before and after, over the equalized tensors that set their scales
	// (not the inputs of a SiLU or LeakyReLU).
	SpreadBefore, SpreadAfter float64
}

// equalizer links channels that must share a scale with a union-find over
// (tensor, channel) elements.
type equalizer struct {
	stats  ChannelStats
	base   map[string]int // first element of each tensor
	parent []int
	pinned []bool
}

func (e *equalizer) id(t string, c int) int { return e.base[t] + c }

func (e *equalizer) find(i int) int {
	for e.parent[i] != i {
		e.parent[i] = e.parent[e.parent[i]]
		i = e.parent[i]
	}
	return i
}

func (e *equalizer) union(a, b int) {
	ra, rb := e.find(a), e.find(b)
	if ra == rb {
		return
	}
	e.parent[rb] = ra
	e.pinned[ra] = e.pinned[ra] || e.pinned[rb]
}

// pin fixes every channel of t to scale 1.
func (e *equalizer) pin(t string) {
	for c := range e.stats[t] {
		e.pinned[e.find(e.id(t, c))] = true
	}
}

func (e *equalizer) has(t string) bool { _, ok := e.base[t]; return ok }

// link unions channel c of a with channel c+offset of b for every channel
// of a; it pins both when the counts do not fit.
func (e *equalizer) link(a, b string, offset int) {
	if !e.has(a) || !e.has(b) || offset+len(e.stats[a]) > len(e.stats[b]) {
		e.pin(a)
		e.pin(b)
		return
	}
	for c := range e.stats[a] {
		e.union(e.id(a, c), e.id(b, offset+c))
	}
}

// passOps commute with a positive per-channel scale: op(s·x) = s·op(x).
var passOps = map[string]bool{
	"MaxPool": true, "AveragePool": true, "GlobalAveragePool": true, "GlobalMaxPool": true,
	"Relu": true, "LeakyRelu": true, "Resize": true, "Identity": true,
}

// siluGate is a SiLU written as t · Sigmoid(t).
type siluGate struct {
	t          string
	sigmoid    *onnxpb.NodeProto
	mul        *onnxpb.NodeProto
	channelsOK bool
}

// findSiLUs returns the tensors read only by a Sigmoid and the Mul of that
// Sigmoid with them.
func findSiLUs(g *onnxpb.GraphProto, ix *onnxgraph.Index) map[string]siluGate {
	out := map[string]siluGate{}
	for _, n := range g.Node {
		for _, t := range n.Output {
			cons := ix.Consumers[t]
			if len(cons) != 2 || ix.IsGraphOutput(t) {
				continue
			}
			s, m := cons[0], cons[1]
			if s.OpType == "Mul" {
				s, m = m, s
			}
			if s.OpType != "Sigmoid" || m.OpType != "Mul" || len(m.Input) != 2 {
				continue
			}
			gate := s.Output[0]
			if len(ix.Consumers[gate]) != 1 || ix.IsGraphOutput(gate) {
				continue
			}
			if (m.Input[0] == t && m.Input[1] == gate) || (m.Input[1] == t && m.Input[0] == gate) {
				out[t] = siluGate{t: t, sigmoid: s, mul: m}
			}
		}
	}
	return out
}

// Equalize rescales activation channels so that each 4-D activation's
// channels span similar ranges, without changing what the model computes.
// A per-tensor 8-bit grid then fits every channel instead of the widest
// one. It generalises cross-layer equalization (Nagel et al., "Data-Free
// Quantization", 2019) from ReLU to any graph of Conv, Add, Concat,
// pooling, resizing, ReLU/LeakyReLU and SiLU: a tensor stored as x/s is
// written by a Conv whose output channels are divided by s and read by
// Convs whose input channels are multiplied by s; ops that commute with a
// positive per-channel scale pass it on; Add and Concat tie the scales of
// their inputs to their output; a SiLU t·σ(t) becomes t'·σ(s·t') on the
// rescaled t' = t/s (one float Mul before its Sigmoid), so its output is
// rescaled by the same s. Channels that reach any other op (a reshape, a
// graph output, a score Sigmoid) keep scale 1. Each free channel group gets
// s = a^α / w^(1−α) from its largest activation a and the largest weight w
// that reads it, both relative to their tensor's widest channel, and never
// less than what keeps every channel within its tensor's original range.
// m is not modified.
func Equalize(m *onnxpb.ModelProto, stats ChannelStats, strength float64) (*onnxpb.ModelProto, EqualizeResult, error) {
	var res EqualizeResult
	if !(strength >= 0 && strength <= 1) {
		return nil, res, fmt.Errorf("quantize: equalize strength %v, want a value in [0, 1]", strength)
	}
	c := onnxgraph.Clone(m)
	g := c.Graph
	ix := onnxgraph.NewIndex(g)
	e := &equalizer{stats: stats, base: map[string]int{}}
	for _, n := range g.Node {
		for _, o := range n.Output {
			if st, ok := stats[o]; ok && !e.has(o) {
				e.base[o] = len(e.parent)
				for range st {
					e.parent = append(e.parent, len(e.parent))
					e.pinned = append(e.pinned, false)
				}
			}
		}
	}
	for _, v := range g.Output {
		e.pin(v.Name)
	}
	silus := findSiLUs(g, ix)
	inSiLU := map[*onnxpb.NodeProto]bool{}
	for _, s := range silus {
		inSiLU[s.sigmoid], inSiLU[s.mul] = true, true
		e.link(s.t, s.mul.Output[0], 0)
	}
	// absorbers[t] are the Convs that can take t's scale into their weights.
	absorbers := map[string][]*onnxpb.NodeProto{}
	sources := map[string]*onnxpb.NodeProto{}
	for _, n := range g.Node {
		if inSiLU[n] {
			continue
		}
		switch {
		case n.OpType == "Conv" && n.Domain == "" && convRescalable(n, ix, e):
			if e.has(n.Input[0]) {
				absorbers[n.Input[0]] = append(absorbers[n.Input[0]], n)
			}
			if e.has(n.Output[0]) {
				sources[n.Output[0]] = n
			}
			continue
		case passOps[n.OpType] && n.Domain == "":
			e.link(n.Input[0], n.Output[0], 0)
			for _, o := range n.Output[1:] {
				if o != "" && (len(ix.Consumers[o]) > 0 || ix.IsGraphOutput(o)) {
					e.pin(n.Input[0]) // MaxPool indices
				}
			}
			continue
		case (n.OpType == "Add" || n.OpType == "Sub") && n.Domain == "" && len(n.Input) == 2 && e.has(n.Input[0]) && e.has(n.Input[1]):
			e.link(n.Input[0], n.Output[0], 0)
			e.link(n.Input[1], n.Output[0], 0)
			continue
		case n.OpType == "Concat" && n.Domain == "" && concatOnChannels(n, e):
			off := 0
			for _, in := range n.Input {
				e.link(in, n.Output[0], off)
				off += len(stats[in])
			}
			continue
		}
		// Any other op pins what it reads and writes.
		for _, t := range append(append([]string(nil), n.Input...), n.Output...) {
			if e.has(t) {
				e.pin(t)
			}
		}
	}
	// A tensor written by nothing that can take a scale (graph input, an
	// unknown producer) was pinned above; one written by a Conv is a source.
	// Every root: its largest activation and largest weight reading it.
	// Per group, in units relative to each member tensor's widest channel
	// (a scale applies to channels, the 8-bit grid to whole tensors): act
	// is the widest relative range among the members that set the scale,
	// bound the widest among all members, wmax the widest relative weight
	// that reads it.
	act := make([]float64, len(e.parent))
	bound := make([]float64, len(e.parent))
	wmax := make([]float64, len(e.parent))
	for t, st := range stats {
		if !e.has(t) {
			continue
		}
		top := 0.0
		for _, v := range st {
			top = math.Max(top, v)
		}
		if top <= 0 {
			continue
		}
		// A tensor only an activation reads (the input of a SiLU or
		// LeakyReLU) takes its group's scale but does not set it: its
		// negative side is flattened by the activation, and its lower bound
		// is fitted to that (see refineActivationRanges).
		_, pre := consumerActivation(ix, t)
		for ch, v := range st {
			r := e.find(e.id(t, ch))
			bound[r] = math.Max(bound[r], v/top)
			if !pre {
				act[r] = math.Max(act[r], v/top)
			}
		}
		for _, conv := range absorbers[t] {
			in := inputChannelMax(conv, ix)
			wtop := 0.0
			for _, v := range in {
				wtop = math.Max(wtop, v)
			}
			if wtop <= 0 {
				continue
			}
			for ch := range st {
				r := e.find(e.id(t, ch))
				wmax[r] = math.Max(wmax[r], in[ch]/wtop)
			}
		}
	}
	// s = a^α / w^(1−α), never below the bound: no channel of any member
	// may grow past its tensor's widest one, so no tensor's grid coarsens.
	scale := func(t string, ch int) float64 {
		r := e.find(e.id(t, ch))
		if e.pinned[r] || act[r] <= 0 || wmax[r] <= 0 {
			return 1
		}
		s := math.Pow(act[r], strength) / math.Pow(wmax[r], 1-strength)
		s = math.Max(s, bound[r])
		return math.Min(math.Max(s, 1e-4), 1e4)
	}
	roots := map[int]bool{}
	for i := range e.parent {
		r := e.find(i)
		if !roots[r] {
			roots[r] = true
			res.Groups++
			if !e.pinned[r] && act[r] > 0 && wmax[r] > 0 {
				res.Free++
			}
		}
	}

	namer := onnxgraph.NewNamer(g)
	scaled := func(t string) []float64 {
		st, ok := stats[t]
		if !ok || !e.has(t) {
			return nil
		}
		s := make([]float64, len(st))
		any := false
		for ch := range st {
			s[ch] = scale(t, ch)
			any = any || s[ch] != 1
		}
		if !any {
			return nil
		}
		return s
	}
	// Rewrite every Conv that writes or reads a rescaled tensor.
	for _, n := range g.Node {
		if n.OpType != "Conv" || n.Domain != "" {
			continue
		}
		var out, in []float64
		if sources[n.Output[0]] == n {
			out = scaled(n.Output[0])
		}
		for _, a := range absorbers[n.Input[0]] {
			if a == n {
				in = scaled(n.Input[0])
			}
		}
		if out == nil && in == nil {
			continue
		}
		if err := rescaleConv(g, ix, namer, n, in, out); err != nil {
			return nil, res, err
		}
	}
	for _, s := range silus {
		f := scaled(s.t)
		if f == nil {
			continue
		}
		vals := make([]float32, len(f))
		for i, v := range f {
			vals[i] = float32(v)
		}
		k := onnxgraph.Float32Tensor(namer.Name(s.t+"_equalize_scale"), []int64{1, int64(len(f)), 1, 1}, vals)
		g.Initializer = append(g.Initializer, k)
		restored := namer.Name(s.t + "_restored")
		g.Node = append(g.Node, onnxgraph.NewNode("Mul", namer.Name(s.sigmoid.Name+"_equalize"), []string{s.t, k.Name}, []string{restored}))
		s.sigmoid.Input[0] = restored
		res.SiLUs++
	}
	for t, st := range stats {
		f := scaled(t)
		if f == nil {
			continue
		}
		res.Tensors++
		if _, pre := consumerActivation(ix, t); pre {
			continue // its spread is not what its scale aims at
		}
		lo, hi, lo2, hi2 := math.Inf(1), 0.0, math.Inf(1), 0.0
		top := 0.0
		for _, v := range st {
			top = math.Max(top, v)
		}
		for ch, v := range st {
			if v <= 1e-3*top {
				continue // dead channels would make the ratio meaningless
			}
			lo, hi = math.Min(lo, v), math.Max(hi, v)
			lo2, hi2 = math.Min(lo2, v/f[ch]), math.Max(hi2, v/f[ch])
		}
		if hi > 0 {
			res.SpreadBefore = math.Max(res.SpreadBefore, hi/lo)
			res.SpreadAfter = math.Max(res.SpreadAfter, hi2/lo2)
		}
	}
	if os.Getenv("GIDEDGE_EQ_DEBUG") != "" {
		for _, n := range g.Node {
			for _, t := range n.Output {
				st, ok := stats[t]
				if !ok {
					continue
				}
				p := 0
				for ch := range st {
					if e.pinned[e.find(e.id(t, ch))] {
						p++
					}
				}
				fmt.Fprintf(os.Stderr, "EQ %s %s pinned %d/%d\n", n.OpType, t, p, len(st))
			}
		}
	}
	if err := onnxgraph.TopoSort(g); err != nil {
		return nil, res, fmt.Errorf("quantize: equalize: %w", err)
	}
	onnxgraph.RemoveUnusedInitializers(g)
	return c, res, nil
}

// convRescalable reports whether a Conv has constant float weights (and
// bias) whose channels can be rescaled, with channel counts that match the
// stats of what it reads and writes.
func convRescalable(n *onnxpb.NodeProto, ix *onnxgraph.Index, e *equalizer) bool {
	if !weightedEligible(n, ix) {
		return false
	}
	w := ix.Init[n.Input[1]]
	groups := int(onnxgraph.AttrIntOr(n, "group", 1))
	if st, ok := e.stats[n.Input[0]]; ok && len(st) != int(w.Dims[1])*groups {
		return false
	}
	if st, ok := e.stats[n.Output[0]]; ok && len(st) != int(w.Dims[0]) {
		return false
	}
	return true
}

// concatOnChannels reports a Concat along the channel axis of 4-D tensors
// whose inputs all have channel statistics.
func concatOnChannels(n *onnxpb.NodeProto, e *equalizer) bool {
	axis := onnxgraph.AttrIntOr(n, "axis", 0)
	if axis != 1 && axis != -3 {
		return false
	}
	total := 0
	for _, in := range n.Input {
		if !e.has(in) {
			return false
		}
		total += len(e.stats[in])
	}
	return e.has(n.Output[0]) && total == len(e.stats[n.Output[0]])
}

// inputChannelMax is, per input channel of a Conv (weights
// [M, C/group, k…]), the largest |w| among the weights that read it.
func inputChannelMax(n *onnxpb.NodeProto, ix *onnxgraph.Index) []float64 {
	wt := ix.Init[n.Input[1]]
	w, err := onnxgraph.Float32s(wt)
	m, cg := int(wt.Dims[0]), int(wt.Dims[1])
	groups := int(onnxgraph.AttrIntOr(n, "group", 1))
	out := make([]float64, cg*groups)
	if err != nil {
		return out
	}
	per := len(w) / (m * cg)
	mg := m / groups
	for oc := range m {
		grp := oc / mg
		for ci := range cg {
			base := (oc*cg + ci) * per
			for _, v := range w[base : base+per] {
				out[grp*cg+ci] = math.Max(out[grp*cg+ci], math.Abs(float64(v)))
			}
		}
	}
	return out
}

// rescaleConv divides a Conv's output channels by out (and its bias) and
// multiplies the weights reading input channel c by in[c]; nil leaves that
// side alone. The weights are copied into new initializers.
func rescaleConv(g *onnxpb.GraphProto, ix *onnxgraph.Index, namer *onnxgraph.Namer, n *onnxpb.NodeProto, in, out []float64) error {
	wt := ix.Init[n.Input[1]]
	w, err := onnxgraph.Float32s(wt)
	if err != nil {
		return fmt.Errorf("quantize: equalize %s: %w", onnxgraph.Describe(n), err)
	}
	m, cg := int(wt.Dims[0]), int(wt.Dims[1])
	groups := int(onnxgraph.AttrIntOr(n, "group", 1))
	per := len(w) / (m * cg) // kernel positions
	mg := m / groups         // output channels per group
	nw := make([]float32, len(w))
	for oc := range m {
		grp := oc / mg
		for ci := range cg {
			k := 1.0
			if in != nil {
				k *= in[grp*cg+ci]
			}
			if out != nil {
				k /= out[oc]
			}
			base := (oc*cg + ci) * per
			for i := base; i < base+per; i++ {
				nw[i] = float32(float64(w[i]) * k)
			}
		}
	}
	newW := onnxgraph.Float32Tensor(namer.Name(wt.Name+"_equalized"), wt.Dims, nw)
	g.Initializer = append(g.Initializer, newW)
	n.Input[1] = newW.Name
	if out != nil && len(n.Input) > 2 && n.Input[2] != "" {
		bt := ix.Init[n.Input[2]]
		b, err := onnxgraph.Float32s(bt)
		if err != nil {
			return fmt.Errorf("quantize: equalize %s: %w", onnxgraph.Describe(n), err)
		}
		nb := make([]float32, len(b))
		for oc := range b {
			nb[oc] = float32(float64(b[oc]) / out[oc])
		}
		newB := onnxgraph.Float32Tensor(namer.Name(bt.Name+"_equalized"), bt.Dims, nb)
		g.Initializer = append(g.Initializer, newB)
		n.Input[2] = newB.Name
	}
	return nil
}
