package quantize

import (
	"fmt"
	"math"
)

// Method names a calibration method: how a tensor's histogram becomes the
// range [Min, Max] that its 8-bit grid covers.
type Method string

// Calibration methods.
const (
	// MinMax covers every value seen: no clipping, coarsest steps.
	MinMax Method = "minmax"
	// Percentile clips the given percentage of extreme values.
	Percentile Method = "percentile"
	// Entropy picks the clipping threshold whose 8-bit version of the value
	// distribution has the smallest KL divergence from the original
	// (TensorRT's calibrator).
	Entropy Method = "entropy"
)

// ParseMethod checks a method name.
func ParseMethod(s string) (Method, error) {
	switch m := Method(s); m {
	case MinMax, Percentile, Entropy:
		return m, nil
	}
	return "", fmt.Errorf("quantize: calibration method %q, want minmax, percentile or entropy", s)
}

// Range is the real interval a tensor's quantization grid covers.
type Range struct {
	Min float64 `json:"min"`
	Max float64 `json:"max"`
}

// entropyBins is the resolution the KL search works at (TensorRT uses 2048).
const entropyBins = 2048

// RangeFor turns a histogram into a range with the given method.
// percentile (e.g. 99.99) is used by Percentile only. levels is the number
// of quantization levels on the side being searched: 128 for int8
// symmetric grids and for two-sided tensors, 256 for one-sided uint8 ones.
func RangeFor(h *Histogram, m Method, percentile float64, symmetric bool) (Range, error) {
	if h.Empty() {
		return Range{}, nil
	}
	full := Range{Min: h.Min, Max: h.Max}
	oneSided := h.Min >= 0 || h.Max <= 0
	switch m {
	case MinMax:
		return full, nil
	case Percentile:
		if !(percentile > 0 && percentile <= 100) {
			return Range{}, fmt.Errorf("quantize: percentile %v, want a value in (0, 100]", percentile)
		}
		p := percentile / 100
		if symmetric || oneSided {
			t := absQuantile(h, p)
			return clipRange(full, t), nil
		}
		tail := (1 - p) / 2
		return Range{Min: h.Quantile(tail), Max: h.Quantile(1 - tail)}, nil
	case Entropy:
		levels := 128
		if oneSided && !symmetric {
			levels = 256
		}
		abs, width := downsample(h.Abs(), h.Width, entropyBins)
		t := EntropyThreshold(abs, levels) * width
		return clipRange(full, t), nil
	}
	return Range{}, fmt.Errorf("quantize: calibration method %q, want minmax, percentile or entropy", m)
}

// clipRange limits a range to [-t, t].
func clipRange(r Range, t float64) Range {
	return Range{Min: math.Max(r.Min, -t), Max: math.Min(r.Max, t)}
}

// absQuantile is the value below which a fraction p of |x| lies.
func absQuantile(h *Histogram, p float64) float64 {
	abs := h.Abs()
	target := p * h.Total
	acc := 0.0
	for i, c := range abs {
		if c == 0 {
			continue
		}
		if acc+c >= target {
			return (float64(i) + (target-acc)/c) * h.Width
		}
		acc += c
	}
	return math.Max(math.Abs(h.Min), math.Abs(h.Max))
}

// downsample merges groups of bins so at most maxBins remain.
func downsample(counts []float64, width float64, maxBins int) ([]float64, float64) {
	group := 1
	for (len(counts)+group-1)/group > maxBins {
		group *= 2
	}
	if group == 1 {
		return counts, width
	}
	out := make([]float64, (len(counts)+group-1)/group)
	for i, c := range counts {
		out[i/group] += c
	}
	return out, width * float64(group)
}

// EntropyThreshold returns, in bins, the clipping threshold of a histogram of
// |x| (bin i covers [i, i+1)) that minimises KL(P‖Q), where P is the
// histogram clipped at the threshold (outliers added to the last kept bin)
// and Q is P's first bins squeezed into `levels` quantization levels and
// expanded back, spreading each level's mass over its non-empty bins. This is
// the method of Migacz, "8-bit Inference with TensorRT" (GTC 2017). With no
// more bins than levels nothing needs clipping and the full range returns.
func EntropyThreshold(hist []float64, levels int) float64 {
	n := len(hist)
	for n > 0 && hist[n-1] == 0 {
		n--
	}
	if n <= levels {
		return float64(n)
	}
	total := 0.0
	for _, c := range hist[:n] {
		total += c
	}
	if total == 0 {
		return float64(n)
	}
	// suffix[i] = sum of hist[i:n], the mass clipped when keeping i bins.
	suffix := make([]float64, n+1)
	for i := n - 1; i >= 0; i-- {
		suffix[i] = suffix[i+1] + hist[i]
	}
	best, bestKL := n, math.Inf(1)
	q := make([]float64, n)
	for i := levels; i <= n; i++ {
		kl := klClipped(hist[:i], suffix[i], levels, total, q[:i])
		if kl < bestKL {
			best, bestKL = i, kl
		}
	}
	return float64(best)
}

// klClipped computes KL(P‖Q) for keeping the bins of kept and clipping
// outliers into the last one; q is scratch of len(kept).
func klClipped(kept []float64, outliers float64, levels int, total float64, q []float64) float64 {
	i := len(kept)
	// Q: each level spreads its mass evenly over its non-empty bins.
	for j := 0; j < levels; j++ {
		start := j * i / levels
		end := (j + 1) * i / levels
		sum, nonzero := 0.0, 0
		for k := start; k < end; k++ {
			if kept[k] != 0 {
				sum += kept[k]
				nonzero++
			}
		}
		for k := start; k < end; k++ {
			if kept[k] != 0 {
				q[k] = sum / float64(nonzero)
			} else {
				q[k] = 0
			}
		}
	}
	qTotal := total - outliers // Q's mass excludes the clipped values
	if qTotal <= 0 {
		return math.Inf(1)
	}
	const eps = 1e-12 // smoothing where Q has no mass but P does
	kl := 0.0
	for k := 0; k < i; k++ {
		p := kept[k]
		if k == i-1 {
			p += outliers
		}
		if p == 0 {
			continue
		}
		pn := p / total
		qn := math.Max(q[k]/qTotal, eps)
		kl += pn * math.Log(pn/qn)
	}
	return kl
}
