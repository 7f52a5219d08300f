package quantize

import (
	"math"
	"sort"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

// A tensor read only by an activation that flattens its negative side
// (LeakyReLU, SiLU) does not need its negative values on the same grid as
// its positive ones: after the activation, an error there shrinks by the
// activation's slope (0.1 for LeakyReLU, near 0 for SiLU below −4). The
// minmax grid spends most of its 256 levels on them all the same. Its lower
// bound is therefore chosen to minimise the error measured after the
// activation: rounding noise step²/12 weighted by the squared slope where
// values stay in range, plus the error of clipping the values below it.
// (For ReLU the optimum is 0, which absorbing the ReLU already gives.)

// refineBins and refineCandidates bound the search's cost per tensor.
const (
	refineBins       = 512
	refineCandidates = 160
	// refineChannels is how many equalization scales stand for a tensor's
	// channels when its SiLU differs per channel.
	refineChannels = 16
)

// activationCurve is the activation a tensor feeds: f per channel scale.
type activationCurve struct {
	f, slope func(x, k float64) float64
	// scales are per-channel input scales of the activation (an equalized
	// SiLU computes t·σ(k·t)); nil means one curve with k = 1.
	scales []float64
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

var (
	leakyCurve = func(alpha float64) activationCurve {
		return activationCurve{
			f: func(x, _ float64) float64 {
				if x < 0 {
					return alpha * x
				}
				return x
			},
			slope: func(x, _ float64) float64 {
				if x < 0 {
					return alpha
				}
				return 1
			},
		}
	}
	// siluCurve is x·σ(k·x), the form an equalized SiLU takes.
	siluCurve = func(scales []float64) activationCurve {
		return activationCurve{
			f: func(x, k float64) float64 { return x * sigmoid(k*x) },
			slope: func(x, k float64) float64 {
				s := sigmoid(k * x)
				return s + k*x*s*(1-s)
			},
			scales: scales,
		}
	}
)

// consumerActivation recognises the activation that alone reads t: a
// LeakyRelu, a SiLU t·σ(t), or an equalized SiLU t·σ(k⊙t).
func consumerActivation(ix *onnxgraph.Index, t string) (activationCurve, bool) {
	cons := ix.Consumers[t]
	if ix.IsGraphOutput(t) {
		return activationCurve{}, false
	}
	if len(cons) == 1 && cons[0].OpType == "LeakyRelu" {
		return leakyCurve(float64(onnxgraph.AttrFloatOr(cons[0], "alpha", 0.01))), true
	}
	if len(cons) != 2 {
		return activationCurve{}, false
	}
	for _, first := range cons {
		var scales []float64
		gateIn := t
		if first.OpType == "Mul" && len(first.Input) == 2 {
			other := first.Input[0]
			if other == t {
				other = first.Input[1]
			}
			k := ix.Init[other]
			if k == nil {
				continue
			}
			v, err := onnxgraph.Float32s(k)
			if err != nil {
				continue
			}
			for _, x := range v {
				scales = append(scales, float64(x))
			}
			if len(ix.Consumers[first.Output[0]]) != 1 {
				continue
			}
			gateIn = first.Output[0]
		} else if first.OpType != "Sigmoid" {
			continue
		}
		var sig *onnxpb.NodeProto
		if gateIn == t {
			sig = first
		} else {
			sig = ix.Consumers[gateIn][0]
			if sig.OpType != "Sigmoid" {
				continue
			}
		}
		gate := sig.Output[0]
		for _, m := range cons {
			if m == first || m.OpType != "Mul" || len(m.Input) != 2 {
				continue
			}
			if (m.Input[0] == t && m.Input[1] == gate) || (m.Input[1] == t && m.Input[0] == gate) {
				return siluCurve(representative(scales)), true
			}
		}
	}
	return activationCurve{}, false
}

// representative picks up to refineChannels evenly spaced quantiles of the
// scales (nil stays nil).
func representative(scales []float64) []float64 {
	if len(scales) <= refineChannels {
		return scales
	}
	s := append([]float64(nil), scales...)
	sort.Float64s(s)
	out := make([]float64, refineChannels)
	for i := range out {
		out[i] = s[(2*i+1)*len(s)/(2*refineChannels)]
	}
	return out
}

// refineActivationRanges raises the lower bound of every uint8 tensor that
// only an activation reads to the value that minimises the error after the
// activation.
func refineActivationRanges(m *onnxpb.ModelProto, hists map[string]*Histogram, ranges map[string]Range) int {
	ix := onnxgraph.NewIndex(m.Graph)
	changed := 0
	for t, r := range ranges {
		h := hists[t]
		if h == nil || h.Empty() || r.Min >= 0 {
			continue
		}
		curve, ok := consumerActivation(ix, t)
		if !ok {
			continue
		}
		if lo := bestLowerBound(h, r, curve); lo > r.Min {
			ranges[t] = Range{Min: lo, Max: r.Max}
			changed++
		}
	}
	return changed
}

// bestLowerBound searches lo in [r.Min, 0] for the smallest error after the
// activation, over the histogram's values.
func bestLowerBound(h *Histogram, r Range, c activationCurve) float64 {
	// Bin centres and counts, merged down to at most refineBins.
	group := max(1, (len(h.Counts)+refineBins-1)/refineBins)
	var xs, ns []float64
	for i := 0; i < len(h.Counts); i += group {
		n, sx := 0.0, 0.0
		for j := i; j < min(i+group, len(h.Counts)); j++ {
			x := h.lowerEdge(j) + h.Width/2
			n += h.Counts[j]
			sx += h.Counts[j] * x
		}
		if n > 0 {
			xs = append(xs, math.Min(math.Max(sx/n, h.Min), h.Max))
			ns = append(ns, n)
		}
	}
	ks := c.scales
	if ks == nil {
		ks = []float64{1}
	}
	// Per bin: the mean squared slope and the curve values per scale.
	slope2 := make([]float64, len(xs))
	for i, x := range xs {
		for _, k := range ks {
			s := c.slope(x, k)
			slope2[i] += s * s
		}
		slope2[i] /= float64(len(ks))
	}
	hi := math.Max(r.Max, 0)
	cost := func(lo float64) float64 {
		step := (hi - lo) / 255
		noise := step * step / 12
		total := 0.0
		for i, x := range xs {
			if x >= lo {
				total += ns[i] * slope2[i] * noise
				continue
			}
			d := 0.0
			for _, k := range ks {
				e := c.f(x, k) - c.f(lo, k)
				d += e * e
			}
			total += ns[i] * d / float64(len(ks))
		}
		return total
	}
	best, bestCost := r.Min, cost(r.Min)
	for i := 1; i <= refineCandidates; i++ {
		lo := r.Min * (1 - float64(i)/float64(refineCandidates+1))
		if v := cost(lo); v < bestCost {
			best, bestCost = lo, v
		}
	}
	return best
}
