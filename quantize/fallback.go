package quantize

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// ErrBudgetUnreachable reports an accuracy budget that no model with at
// least one quantized layer (or within MaxFloatLayers) meets.
var ErrBudgetUnreachable = errors.New("quantize: accuracy budget unreachable")

// fallbackTimingRuns is how many interleaved runs time the speed cost of
// the layers kept in float.
const fallbackTimingRuns = 40

// FloatLayer is a weighted layer the sensitive-layer fallback kept in
// float, with the activation ops that follow it (its unit).
type FloatLayer struct {
	Node   string `json:"node"`
	OpType string `json:"op_type"`
	// Nodes are every node kept float with it: a SiLU's Sigmoid and Mul, a
	// LeakyRelu; and, when its block went float whole, the block's others.
	Nodes []string `json:"nodes,omitempty"`
	// SQNRAlone is the worst SQNR its unit's tensors reach when the layer is
	// fed float inputs (dB), and Noise the summed noise-to-signal power
	// ratio of those tensors: the ranking, highest Noise first.
	SQNRAlone float64 `json:"sqnr_alone_db"`
	Noise     float64 `json:"noise"`
	// Block is set when the layer went float because most of its block did.
	Block  string `json:"block,omitempty"`
	Reason string `json:"reason"`
}

// FallbackStep is one candidate the search scored.
type FallbackStep struct {
	Units  int     `json:"units"`  // most sensitive units asked for
	Layers int     `json:"layers"` // weighted layers float after whole blocks
	Metric float64 `json:"metric"`
	Met    bool    `json:"met"`
}

// FallbackReport is what the sensitive-layer search did and cost.
type FallbackReport struct {
	Budget string `json:"budget"`
	Met    bool   `json:"met"`
	// AllQuantized and Final are the budget metric with every layer
	// quantized and with the chosen layers in float.
	AllQuantized float64        `json:"metric_all_quantized"`
	Final        float64        `json:"metric_final"`
	Steps        []FallbackStep `json:"steps,omitempty"`
	// FloatLayers of WeightedLayers stayed in float.
	FloatLayers    int `json:"float_layers"`
	WeightedLayers int `json:"weighted_layers"`
	// CPU ms per run (one thread unless Threads says otherwise, interleaved):
	// every layer quantized, the final model, the clean float graph.
	CPUMsAllQuantized float64 `json:"cpu_ms_all_quantized,omitempty"`
	CPUMsFinal        float64 `json:"cpu_ms_final,omitempty"`
	CPUMsFP32         float64 `json:"cpu_ms_fp32,omitempty"`
	Message           string  `json:"message"`
}

func (f *FallbackReport) writeText(b *strings.Builder) {
	fmt.Fprintf(b, "  fallback (%s): %s\n", f.Budget, f.Message)
	for _, s := range f.Steps {
		fmt.Fprintf(b, "    tried the %d most sensitive units (%d layers float): %.4g%s\n", s.Units, s.Layers, s.Metric, map[bool]string{true: " (met)", false: ""}[s.Met])
	}
}

// unit is a weighted layer with the activation ops that follow it: what
// goes back to float together, so a float convolution never feeds a
// quantized SiLU that would only add Q/DQ.
type unit struct {
	head, op string
	nodes    []string
	tensors  []string // its quantized outputs
	next     string   // the unit whose layer alone reads its output (chains)
	noise    float64
	worst    float64
}

// fallback keeps the units whose layers make the most quantization error
// in float until the budget holds. The ranking comes from the per-layer
// analysis (Inspect: each tensor's SQNR with the layer fed float inputs),
// so it costs one diagnosis rather than one model per layer. Units that
// chain into a block (a head branch: each output read only by the next
// layer) go float whole when most of the block is float. The number of
// units is found by doubling then bisection on the budget metric. When
// even every unit but one in float misses the budget, or MaxFloatLayers
// stops the search, the error wraps ErrBudgetUnreachable and nothing is
// written.
func (j *job) fallback(ctx context.Context, q *onnxpb.ModelProto) (*onnxpb.ModelProto, error) {
	b := j.opts.Budget
	if len(j.inputs) == 0 {
		return nil, errors.New("quantize: the fallback needs calibration images (--calib) to rank layers")
	}
	score, err := j.budgetScore()
	if err != nil {
		return nil, err
	}
	metric, err := score(ctx, q)
	if err != nil {
		return nil, err
	}
	fr := &FallbackReport{Budget: b.String(), AllQuantized: metric, Final: metric, WeightedLayers: len(j.plan.Weighted)}
	j.rep.Fallback = fr
	j.logf("fallback: all %d weighted layers quantized: %s %.4g (budget %s)", len(j.plan.Weighted), b.Metric(), metric, b)
	if b.Met(metric) {
		fr.Met, fr.Message = true, "met with every layer quantized"
		met := true
		j.rep.BudgetMet = &met
		return q, nil
	}

	ins, err := Inspect(ctx, j.prep.Model, q, j.prep.Input, j.shape, j.inputs, InspectOptions{Threads: j.opts.Threads})
	if err != nil {
		return nil, err
	}
	units := rankUnits(j.plan, ins)
	for i, u := range units[:min(5, len(units))] {
		j.logf("fallback: most sensitive #%d: %s (%s), alone SQNR %.1f dB", i+1, u.head, u.op, u.worst)
	}
	limit := len(units) - 1 // at least one layer must stay quantized
	if j.opts.MaxFloatLayers > 0 {
		limit = min(limit, j.opts.MaxFloatLayers)
	}

	type result struct {
		metric float64
		plan   *Plan
		q      *onnxpb.ModelProto
		float  []FloatLayer
	}
	tried := map[int]*result{}
	try := func(k int) (*result, error) {
		if r, ok := tried[k]; ok {
			return r, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("quantize: fallback: %w", err)
		}
		floats := chosenUnits(units, k)
		sel := j.sel
		sel.Exclude = append([]string(nil), j.sel.Exclude...)
		layers := 0
		for _, f := range floats {
			sel.Exclude = append(sel.Exclude, f.Nodes...)
			layers++
		}
		p, err := NewPlan(j.prep, sel)
		if errors.Is(err, ErrNothingToQuantize) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		cand, err := Build(p, j.ranges)
		if err != nil {
			return nil, err
		}
		m, err := score(ctx, cand)
		if err != nil {
			return nil, err
		}
		r := &result{metric: m, plan: p, q: cand, float: floats}
		tried[k] = r
		fr.Steps = append(fr.Steps, FallbackStep{Units: k, Layers: layers, Metric: m, Met: b.Met(m)})
		j.logf("fallback: %d most sensitive units float (%d layers): %s %.4g", k, layers, b.Metric(), m)
		return r, nil
	}

	// Doubling finds a count that meets the budget, bisection the smallest.
	lo, hi := 0, -1
	for k := 1; ; k = min(2*k, limit) {
		if k > limit || limit < 1 {
			break
		}
		r, err := try(k)
		if err != nil {
			return nil, err
		}
		if r != nil && b.Met(r.metric) {
			hi = k
			break
		}
		lo = k
		if k == limit {
			break
		}
	}
	if hi < 0 {
		return nil, j.unreachable(q, limit, len(units))
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		r, err := try(mid)
		if err != nil {
			return nil, err
		}
		if r != nil && b.Met(r.metric) {
			hi = mid
		} else {
			lo = mid
		}
	}
	best := tried[hi]
	j.plan = best.plan
	j.rep.FloatLayers = best.float
	fr.Met, fr.Final, fr.FloatLayers = true, best.metric, len(best.float)
	met := true
	j.rep.BudgetMet = &met
	lat, err := compareLatency([]*onnxpb.ModelProto{q, best.q, j.clean}, j.prep.Input, j.shape, j.sampleInput(), fallbackTimingRuns, j.opts.Threads)
	if err != nil {
		return nil, err
	}
	fr.CPUMsAllQuantized, fr.CPUMsFinal, fr.CPUMsFP32 = lat[0].CPUMs, lat[1].CPUMs, lat[2].CPUMs
	fr.Message = fmt.Sprintf("met with %d of %d weighted layers in float (%s %.4g, all quantized %.4g); CPU ms per run: all quantized %.2f, final %.2f, float %.2f",
		len(best.float), len(j.plan.Weighted)+len(best.float), b.Metric(), best.metric, metric, lat[0].CPUMs, lat[1].CPUMs, lat[2].CPUMs)
	if lat[1].CPUMs >= lat[2].CPUMs {
		fr.Message += "; the result is no faster than the float model: serve the float model instead"
		j.rep.Notes = append(j.rep.Notes, "the fallback's model meets the budget but is no faster than the float model on this CPU: serve the float model instead")
	}
	j.logf("fallback: %s", fr.Message)
	return best.q, nil
}

// unreachable builds the error of a budget the search could not meet, with
// what it tried and what the float layers cost.
func (j *job) unreachable(q *onnxpb.ModelProto, limit, units int) error {
	b, fr := j.opts.Budget, j.rep.Fallback
	best := fr.AllQuantized
	layers := 0
	for _, s := range fr.Steps {
		if (b.Kind == CosineBudget && s.Metric > best) || (b.Kind == APDropBudget && s.Metric < best) {
			best, layers = s.Metric, s.Layers
		}
	}
	why := fmt.Sprintf("even with %d of %d units in float (every one but one)", limit, units)
	if j.opts.MaxFloatLayers > 0 && limit < units-1 {
		why = fmt.Sprintf("with up to %d units in float (--max-float-layers %d)", limit, j.opts.MaxFloatLayers)
	}
	cost := ""
	if lat, err := compareLatency([]*onnxpb.ModelProto{q, j.clean}, j.prep.Input, j.shape, j.sampleInput(), fallbackTimingRuns, j.opts.Threads); err == nil {
		cost = fmt.Sprintf("; CPU ms per run: all quantized %.2f, float %.2f", lat[0].CPUMs, lat[1].CPUMs)
	}
	return fmt.Errorf("%w: %s is not met %s: the best %s was %.4g with %d layers float (all quantized %.4g)%s; nothing written: relax the budget, raise --max-float-layers, or serve the float model",
		ErrBudgetUnreachable, b, why, b.Metric(), best, layers, fr.AllQuantized, cost)
}

// budgetScore returns the function that scores a candidate against the
// budget: AP drop on the labelled images, or the smallest output cosine on
// the eval inputs.
func (j *job) budgetScore() (func(context.Context, *onnxpb.ModelProto) (float64, error), error) {
	switch j.opts.Budget.Kind {
	case APDropBudget:
		candidate := filepath.Join(j.tmpDir, "candidate.onnx")
		fp32 := *j.rep.FP32.AP
		return func(ctx context.Context, q *onnxpb.ModelProto) (float64, error) {
			if err := onnxgraph.Save(candidate, q); err != nil {
				return 0, err
			}
			ap, _, err := j.labels.averagePrecision(ctx, candidate, j.opts.Threads)
			return fp32 - ap, err
		}, nil
	case CosineBudget:
		return func(_ context.Context, q *onnxpb.ModelProto) (float64, error) {
			r, err := newRunner(q, j.prep.Input, j.shape, nil, runnerOptions{Threads: j.opts.Threads})
			if err != nil {
				return 0, err
			}
			defer r.close()
			c, err := outputCosines(j.ref, r, j.inputs)
			return minCosine(c), err
		}, nil
	}
	return nil, fmt.Errorf("quantize: budget kind %d unknown", j.opts.Budget.Kind)
}

// activationOps are ops that, right after a weighted layer, belong to its
// unit.
var activationOps = map[string]bool{
	"Relu": true, "LeakyRelu": true, "Clip": true, "Sigmoid": true, "Tanh": true,
	"HardSigmoid": true, "HardSwish": true, "Elu": true, "Selu": true, "PRelu": true,
}

// rankUnits groups the plan's weighted layers with the activation ops that
// follow them and sorts them by the noise their tensors make alone, most
// first.
func rankUnits(p *Plan, ins *Inspection) []*unit {
	g := p.Model.Graph
	ix := onnxgraph.NewIndex(g)
	byName := map[string]*onnxpb.NodeProto{}
	for _, n := range g.Node {
		byName[n.Name] = n
	}
	quantized := map[string]bool{}
	for _, t := range p.Tensors {
		quantized[t] = true
	}
	stat := map[string]TensorStat{}
	for _, s := range ins.Tensors {
		stat[s.Name] = s
	}
	var units []*unit
	headOf := map[string]*unit{} // weighted node → its unit
	for _, name := range p.Weighted {
		n := byName[name]
		u := &unit{head: name, op: n.OpType, nodes: []string{name}, worst: maxSQNR}
		out := n.Output[0]
		for step := 0; step < 2; step++ {
			next := activationAfter(ix, out)
			if next == nil {
				break
			}
			for _, a := range next {
				u.nodes = append(u.nodes, a.Name)
			}
			out = next[len(next)-1].Output[0]
		}
		for _, nn := range u.nodes {
			for _, o := range byName[nn].Output {
				if quantized[o] {
					u.tensors = append(u.tensors, o)
				}
			}
		}
		for _, t := range u.tensors {
			if s, ok := stat[t]; ok && !s.PreActivation {
				u.noise += math.Pow(10, -s.SQNRAlone/10)
				u.worst = math.Min(u.worst, s.SQNRAlone)
			}
		}
		if cons := ix.Consumers[out]; len(cons) == 1 && opClasses[cons[0].OpType] == classWeighted && !ix.IsGraphOutput(out) {
			u.next = cons[0].Name
		}
		units = append(units, u)
		headOf[name] = u
	}
	sort.SliceStable(units, func(a, b int) bool { return units[a].noise > units[b].noise })
	return units
}

// activationAfter returns the activation that reads t, when t feeds only
// it: one activation op, or a SiLU / HardSwish written as x·f(x) (the
// Sigmoid or HardSigmoid and the Mul), in graph order.
func activationAfter(ix *onnxgraph.Index, t string) []*onnxpb.NodeProto {
	cons := ix.Consumers[t]
	if ix.IsGraphOutput(t) {
		return nil
	}
	if len(cons) == 1 && activationOps[cons[0].OpType] {
		return cons
	}
	if len(cons) != 2 {
		return nil
	}
	gate, mul := cons[0], cons[1]
	if gate.OpType == "Mul" {
		gate, mul = mul, gate
	}
	if (gate.OpType != "Sigmoid" && gate.OpType != "HardSigmoid") || mul.OpType != "Mul" || len(mul.Input) != 2 {
		return nil
	}
	g := gate.Output[0]
	if (mul.Input[0] == t && mul.Input[1] == g) || (mul.Input[1] == t && mul.Input[0] == g) {
		if len(ix.Consumers[g]) == 1 {
			return []*onnxpb.NodeProto{gate, mul}
		}
	}
	return nil
}

// chosenUnits returns the k most sensitive units as float layers, plus the
// rest of every chain (block) most of whose units are among them.
func chosenUnits(units []*unit, k int) []FloatLayer {
	chosen := map[*unit]bool{}
	for _, u := range units[:min(k, len(units))] {
		chosen[u] = true
	}
	byHead := map[string]*unit{}
	prev := map[string]*unit{}
	for _, u := range units {
		byHead[u.head] = u
	}
	for _, u := range units {
		if u.next != "" && byHead[u.next] != nil {
			prev[u.next] = u
		}
	}
	block := map[*unit]string{}
	for _, u := range units {
		if prev[u.head] != nil {
			continue // not the start of a chain
		}
		var chain []*unit
		for c := u; c != nil; c = byHead[c.next] {
			chain = append(chain, c)
			if c.next == "" {
				break
			}
		}
		if len(chain) < 2 {
			continue
		}
		in := 0
		for _, c := range chain {
			if chosen[c] {
				in++
			}
		}
		if 2*in > len(chain) {
			name := chain[0].head + " … " + chain[len(chain)-1].head
			for _, c := range chain {
				if !chosen[c] {
					chosen[c] = true
					block[c] = name
				}
			}
		}
	}
	var out []FloatLayer
	for _, u := range units {
		if !chosen[u] {
			continue
		}
		f := FloatLayer{Node: u.head, OpType: u.op, Nodes: u.nodes, SQNRAlone: u.worst, Noise: u.noise, Block: block[u]}
		if f.Block != "" {
			f.Reason = fmt.Sprintf("most of its block %s is float, so the block goes float whole", f.Block)
		} else {
			f.Reason = fmt.Sprintf("its tensors reach %.1f dB SQNR when fed float inputs: among the layers that make the most error", u.worst)
		}
		out = append(out, f)
	}
	return out
}
