package quantize

import (
	"fmt"
	"math"
)

// DefaultBins is the number of histogram bins kept per tensor.
const DefaultBins = 8192

// Histogram counts a tensor's values over calibration runs in a fixed number
// of bins, whatever the number of values. Bins have a power-of-two width and
// edges at integer multiples of it, so when a new value falls outside the
// covered range the width doubles and pairs of bins merge exactly; no count
// is ever split or approximated, only resolution is lost. Min and Max are
// exact.
//
// Bin i covers [(Origin+i)·Width, (Origin+i+1)·Width); Origin is always the
// bin of Min, so the histogram stays anchored at the smallest value seen.
type Histogram struct {
	Min, Max float64
	Width    float64
	Origin   int64
	Counts   []float64
	Total    float64
	// Skipped counts NaN and infinite values, which are not binned.
	Skipped int64
}

// NewHistogram returns an empty histogram with the given number of bins
// (DefaultBins when bins < 16).
func NewHistogram(bins int) *Histogram {
	if bins < 16 {
		bins = DefaultBins
	}
	return &Histogram{Counts: make([]float64, bins), Min: math.Inf(1), Max: math.Inf(-1)}
}

// Empty reports whether no finite value was added.
func (h *Histogram) Empty() bool { return h.Total == 0 }

// Add bins a batch of values.
func (h *Histogram) Add(values []float32) {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range values {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			h.Skipped++
			continue
		}
		lo = math.Min(lo, f)
		hi = math.Max(hi, f)
	}
	if lo > hi {
		return
	}
	h.cover(lo, hi)
	inv := 1 / h.Width
	last := len(h.Counts) - 1
	for _, v := range values {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		i := int(int64(math.Floor(f*inv)) - h.Origin)
		// Guard against rounding at the edges; the range check makes it rare.
		if i < 0 {
			i = 0
		} else if i > last {
			i = last
		}
		h.Counts[i]++
	}
	h.Total += float64(len(values)) - float64(countNonFinite(values))
}

func countNonFinite(values []float32) int {
	n := 0
	for _, v := range values {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			n++
		}
	}
	return n
}

// cover widens the histogram so [lo, hi] and everything already counted fit.
func (h *Histogram) cover(lo, hi float64) {
	newMin, newMax := math.Min(h.Min, lo), math.Max(h.Max, hi)
	bins := int64(len(h.Counts))
	if h.Width == 0 {
		h.Width = initialWidth(newMin, newMax, bins)
		h.Origin = floorDiv(newMin, h.Width)
	}
	for floorDiv(newMax, h.Width)-floorDiv(newMin, h.Width) >= bins {
		h.double()
	}
	if shift := h.Origin - floorDiv(newMin, h.Width); shift > 0 {
		copy(h.Counts[shift:], h.Counts[:bins-shift])
		clear(h.Counts[:shift])
		h.Origin -= shift
	}
	h.Min, h.Max = newMin, newMax
}

// double merges bin pairs: the width doubles and edges stay aligned.
func (h *Histogram) double() {
	newOrigin := floorInt(h.Origin, 2)
	merged := make([]float64, len(h.Counts))
	for i, c := range h.Counts {
		if c != 0 {
			merged[floorInt(h.Origin+int64(i), 2)-newOrigin] += c
		}
	}
	h.Counts = merged
	h.Origin = newOrigin
	h.Width *= 2
}

func floorDiv(v, width float64) int64 { return int64(math.Floor(v / width)) }

func floorInt(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// initialWidth is the smallest power of two whose bins span [lo, hi].
func initialWidth(lo, hi float64, bins int64) float64 {
	span := hi - lo
	if span <= 0 {
		span = math.Max(math.Abs(hi), 1e-6)
	}
	_, exp := math.Frexp(span / float64(bins-2))
	w := math.Ldexp(1, exp)
	for floorDiv(hi, w)-floorDiv(lo, w) >= bins {
		w *= 2
	}
	return w
}

// Merge adds another histogram's counts (for example from a calibration
// cache or a parallel worker).
func (h *Histogram) Merge(o *Histogram) error {
	if o.Empty() {
		return nil
	}
	if len(o.Counts) != len(h.Counts) {
		return fmt.Errorf("quantize: merge histograms of %d and %d bins", len(h.Counts), len(o.Counts))
	}
	h.cover(o.Min, o.Max)
	for o.Width < h.Width {
		o = o.clone()
		o.double()
	}
	for h.Width < o.Width {
		h.double()
		h.cover(o.Min, o.Max)
	}
	for i, c := range o.Counts {
		if c != 0 {
			h.Counts[o.Origin+int64(i)-h.Origin] += c
		}
	}
	h.Total += o.Total
	h.Skipped += o.Skipped
	return nil
}

func (h *Histogram) clone() *Histogram {
	c := *h
	c.Counts = append([]float64(nil), h.Counts...)
	return &c
}

// lowerEdge returns the value at the lower edge of bin i.
func (h *Histogram) lowerEdge(i int) float64 { return float64(h.Origin+int64(i)) * h.Width }

// Quantile returns the value below which a fraction q (0..1) of the counted
// values lie, interpolating linearly inside a bin and clamped to [Min, Max].
func (h *Histogram) Quantile(q float64) float64 {
	if h.Empty() {
		return 0
	}
	if q <= 0 {
		return h.Min
	}
	if q >= 1 {
		return h.Max
	}
	target := q * h.Total
	acc := 0.0
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		if acc+c >= target {
			v := h.lowerEdge(i) + (target-acc)/c*h.Width
			return math.Min(math.Max(v, h.Min), h.Max)
		}
		acc += c
	}
	return h.Max
}

// Abs folds the histogram around zero: bin j of the result counts values
// with |x| in [j·Width, (j+1)·Width). Zero is always a bin edge, so the fold
// is exact. The slice is as long as the largest |x| needs.
func (h *Histogram) Abs() []float64 {
	if h.Empty() {
		return nil
	}
	n := max(floorDiv(math.Abs(h.Min), h.Width), floorDiv(math.Abs(h.Max), h.Width)) + 1
	out := make([]float64, n)
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		k := h.Origin + int64(i)
		if k < 0 {
			k = -k - 1
		}
		if k >= n {
			k = n - 1
		}
		out[k] += c
	}
	return out
}
