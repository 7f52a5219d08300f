package quantize

import (
	"context"
	"fmt"
	"sort"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// FloatLayer is a weighted layer the sensitive-layer fallback kept in float.
type FloatLayer struct {
	Node   string `json:"node"`
	OpType string `json:"op_type"`
	// Gain is how much the smallest output cosine similarity rose when only
	// this layer was put back in float (leave-one-out), the ranking used.
	Gain float64 `json:"cosine_gain"`
	// After is the budget metric once this layer and those before it were
	// in float: AP drop in points, or the smallest output cosine.
	After  float64 `json:"metric_after"`
	Reason string  `json:"reason"`
}

// budget scores a candidate QDQ model against the accuracy budget.
type budget struct {
	name string // "AP drop" or "min cosine"
	// score returns the metric; ok reports whether it is within budget.
	score func(ctx context.Context, q *onnxpb.ModelProto) (metric float64, ok bool, err error)
	limit float64
}

// fallbackInput is what the search needs besides the budget.
type fallbackInput struct {
	prep     *Prepared
	sel      Selection
	ranges   map[string]Range
	act      Activations
	ref      *runner     // float model on the eval inputs
	inputs   [][]float32 // eval inputs for the leave-one-out ranking
	shape    []int64
	threads  int
	maxFloat int
	logf     func(format string, args ...any)
}

// fallback keeps the most sensitive weighted layers in float until the
// budget holds or maxFloat layers are float. Layers are ranked by
// leave-one-out: each quantized layer in turn is put back in float and the
// rise of the smallest output cosine similarity is its contribution to the
// error. It returns the final plan, model and the layers kept float.
func fallback(ctx context.Context, in fallbackInput, plan *Plan, q *onnxpb.ModelProto, b budget) (*Plan, *onnxpb.ModelProto, []FloatLayer, float64, error) {
	metric, ok, err := b.score(ctx, q)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	in.logf("fallback: all %d weighted layers quantized: %s %.4g (budget %.4g)", len(plan.Weighted), b.name, metric, b.limit)
	if ok {
		return plan, q, nil, metric, nil
	}
	base, err := cosineOf(q, in)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	type ranked struct {
		node, op string
		gain     float64
	}
	var ranking []ranked
	opOf := map[string]string{}
	for _, n := range plan.Model.Graph.Node {
		opOf[n.Name] = n.OpType
	}
	for i, name := range plan.Weighted {
		if err := ctx.Err(); err != nil {
			return nil, nil, nil, 0, fmt.Errorf("quantize: fallback: %w", err)
		}
		sel := in.sel
		sel.Exclude = append(append([]string(nil), in.sel.Exclude...), name)
		p, err := NewPlan(in.prep, sel)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		cand, err := Build(p, in.ranges, in.act)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		c, err := cosineOf(cand, in)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		ranking = append(ranking, ranked{name, opOf[name], c - base})
		if (i+1)%10 == 0 {
			in.logf("fallback: ranked %d/%d layers", i+1, len(plan.Weighted))
		}
	}
	sort.SliceStable(ranking, func(i, j int) bool { return ranking[i].gain > ranking[j].gain })
	for i, r := range ranking[:min(5, len(ranking))] {
		in.logf("fallback: most sensitive #%d: %s (%s), leave-one-out cosine gain %+.4f", i+1, r.node, r.op, r.gain)
	}

	var floats []FloatLayer
	exclude := append([]string(nil), in.sel.Exclude...)
	for _, r := range ranking {
		if ok || len(floats) >= in.maxFloat {
			break
		}
		before := metric
		exclude = append(exclude, r.node)
		sel := in.sel
		sel.Exclude = exclude
		p, err := NewPlan(in.prep, sel)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		cand, err := Build(p, in.ranges, in.act)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		metric, ok, err = b.score(ctx, cand)
		if err != nil {
			return nil, nil, nil, 0, err
		}
		floats = append(floats, FloatLayer{Node: r.node, OpType: r.op, Gain: r.gain, After: metric,
			Reason: fmt.Sprintf("%s %.4g with it quantized misses the budget %.4g; leave-one-out cosine gain %+.4f ranks it the next most sensitive", b.name, before, b.limit, r.gain)})
		plan, q = p, cand
		in.logf("fallback: %s kept float: %s now %.4g", r.node, b.name, metric)
	}
	if !ok {
		in.logf("fallback: budget %s %.4g not met with %d layers in float (limit --max-float-layers)", b.name, b.limit, len(floats))
	}
	return plan, q, floats, metric, nil
}

// cosineOf is the smallest output cosine similarity of q against the float
// reference over the eval inputs.
func cosineOf(q *onnxpb.ModelProto, in fallbackInput) (float64, error) {
	r, err := newRunner(q, in.prep.Input, in.shape, nil, runnerOptions{Threads: in.threads})
	if err != nil {
		return 0, err
	}
	defer r.close()
	c, err := outputCosines(in.ref, r, in.inputs)
	if err != nil {
		return 0, err
	}
	return minCosine(c), nil
}

// modelBytes is the serialized size of a model.
func modelBytes(m *onnxpb.ModelProto) int64 {
	data, err := onnxgraph.Marshal(m)
	if err != nil {
		return 0
	}
	return int64(len(data))
}
