package quantize

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"
)

func TestHistogramGrowsWithoutLosingCounts(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	h := NewHistogram(256)
	var all []float64
	for batch := range 20 {
		// Each batch widens the range: the bins must re-merge, never drop counts.
		scale := math.Pow(1.6, float64(batch))
		v := make([]float32, 500)
		for i := range v {
			v[i] = float32(r.NormFloat64()*scale + float64(batch))
			all = append(all, float64(v[i]))
		}
		h.Add(v)
	}
	if len(h.Counts) != 256 {
		t.Fatalf("bins grew to %d, want 256", len(h.Counts))
	}
	sum := 0.0
	for _, c := range h.Counts {
		sum += c
	}
	if sum != float64(len(all)) || h.Total != sum {
		t.Fatalf("counts sum %v, total %v, want %d", sum, h.Total, len(all))
	}
	sort.Float64s(all)
	if h.Min != all[0] || h.Max != all[len(all)-1] {
		t.Fatalf("min/max %v %v, want %v %v", h.Min, h.Max, all[0], all[len(all)-1])
	}
	// Every value lies in the bin its edges say.
	for _, v := range all[:50] {
		i := int(int64(math.Floor(v/h.Width)) - h.Origin)
		if i < 0 || i >= len(h.Counts) || h.Counts[i] == 0 {
			t.Fatalf("value %v falls in bin %d, which is empty or outside", v, i)
		}
	}
	for _, q := range []float64{0.01, 0.5, 0.99} {
		want := all[int(q*float64(len(all)))]
		if got := h.Quantile(q); math.Abs(got-want) > 2*h.Width {
			t.Fatalf("quantile %v: got %v, want %v ± %v", q, got, want, 2*h.Width)
		}
	}
}

func TestHistogramSkipsNonFinite(t *testing.T) {
	h := NewHistogram(64)
	h.Add([]float32{1, float32(math.NaN()), float32(math.Inf(1)), 2})
	if h.Total != 2 || h.Skipped != 2 || h.Min != 1 || h.Max != 2 {
		t.Fatalf("total %v skipped %d range [%v %v], want 2, 2, [1 2]", h.Total, h.Skipped, h.Min, h.Max)
	}
	h.Add([]float32{float32(math.NaN())})
	if h.Total != 2 {
		t.Fatalf("an all-NaN batch changed the total to %v", h.Total)
	}
}

func TestHistogramAbsFoldsExactly(t *testing.T) {
	h := NewHistogram(64)
	h.Add([]float32{-2.9, -1.1, -0.3, 0, 0.3, 1.1, 2.9})
	abs := h.Abs()
	sum := 0.0
	for _, c := range abs {
		sum += c
	}
	if sum != 7 {
		t.Fatalf("abs histogram holds %v values, want 7", sum)
	}
	// -2.9 and 2.9 land in the same |x| bin, as do -1.1 and 1.1.
	for _, v := range []float64{2.9, 1.1} {
		if c := abs[int(v/h.Width)]; c != 2 {
			t.Fatalf("|x| = %v bin holds %v, want 2", v, c)
		}
	}
}

func TestHistogramMerge(t *testing.T) {
	a, b, both := NewHistogram(128), NewHistogram(128), NewHistogram(128)
	x := []float32{0.1, 0.2, 0.3, 0.4}
	y := []float32{-50, 10, 20, 75}
	a.Add(x)
	b.Add(y)
	both.Add(x)
	both.Add(y)
	if err := a.Merge(b); err != nil {
		t.Fatal(err)
	}
	if a.Total != both.Total || a.Width != both.Width || a.Origin != both.Origin || a.Min != -50 || a.Max != 75 {
		t.Fatalf("merged histogram differs: %+v vs %+v", a, both)
	}
	for i := range a.Counts {
		if a.Counts[i] != both.Counts[i] {
			t.Fatalf("bin %d: %v vs %v", i, a.Counts[i], both.Counts[i])
		}
	}
}
