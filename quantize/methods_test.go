package quantize

import (
	"math"
	"testing"
)

func histogramOf(values []float32) *Histogram {
	h := NewHistogram(4096)
	h.Add(values)
	return h
}

func TestMinMaxIsExact(t *testing.T) {
	h := histogramOf([]float32{-1.25, 0, 3.5, 2})
	r, err := RangeFor(h, MinMax, 0, false)
	if err != nil || r.Min != -1.25 || r.Max != 3.5 {
		t.Fatalf("minmax %+v %v, want [-1.25 3.5]", r, err)
	}
}

func TestPercentileOnUniform(t *testing.T) {
	v := make([]float32, 100000)
	for i := range v {
		v[i] = float32(i) / 100 // 0 .. 999.99, one-sided
	}
	h := histogramOf(v)
	r, err := RangeFor(h, Percentile, 99, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Min != 0 || math.Abs(r.Max-990) > 1 {
		t.Fatalf("99th percentile range %+v, want [0, 990±1]", r)
	}
	// Two-sided asymmetric: half a percent clipped on each side.
	for i := range v {
		v[i] -= 500
	}
	r, _ = RangeFor(histogramOf(v), Percentile, 99, false)
	if math.Abs(r.Min+495) > 1 || math.Abs(r.Max-495) > 1 {
		t.Fatalf("two-sided 99%% range %+v, want [-495, 495] ±1", r)
	}
	if _, err := RangeFor(h, Percentile, 0, false); err == nil {
		t.Fatal("percentile 0: want an error")
	}
}

func TestEntropyThresholdKnownAnswers(t *testing.T) {
	t.Run("uniform keeps everything", func(t *testing.T) {
		hist := make([]float64, 2048)
		for i := range hist {
			hist[i] = 100
		}
		if got := EntropyThreshold(hist, 128); got != 2048 {
			t.Fatalf("threshold %v bins, want 2048 (a flat histogram quantizes without loss)", got)
		}
	})
	t.Run("fewer bins than levels", func(t *testing.T) {
		hist := make([]float64, 2048)
		for i := range 100 {
			hist[i] = float64(i + 1)
		}
		if got := EntropyThreshold(hist, 128); got != 100 {
			t.Fatalf("threshold %v, want 100 (the last non-empty bin)", got)
		}
	})
	t.Run("rare far outliers are clipped", func(t *testing.T) {
		// A decaying bulk in the first 256 bins and a handful of values near
		// bin 2000: clipping them costs far less than coarse steps for all.
		hist := make([]float64, 2048)
		for i := range 256 {
			hist[i] = 1e6 * math.Exp(-float64(i)/40)
		}
		hist[2000] = 3
		got := EntropyThreshold(hist, 128)
		if got < 128 || got > 400 {
			t.Fatalf("threshold %v bins, want the bulk's end (128..400), not the outlier at 2000", got)
		}
	})
	t.Run("range from a histogram", func(t *testing.T) {
		v := make([]float32, 0, 20001)
		for i := range 20000 {
			v = append(v, float32(math.Sin(float64(i)))*1) // bulk in [-1, 1]
		}
		v = append(v, 10) // one far outlier
		r, err := RangeFor(histogramOf(v), Entropy, 0, true)
		if err != nil {
			t.Fatal(err)
		}
		if r.Max > 2 || r.Max < 0.9 || r.Min > -0.9 || r.Min < -2 {
			t.Fatalf("entropy range %+v, want about [-1, 1] with the outlier at 10 clipped", r)
		}
	})
}
