package quantize

import (
	"fmt"
	"math"
	"sort"
	"syscall"
	"time"
)

// Latency summarises repeated single-image runs through ONNX Runtime.
type Latency struct {
	MedianMs float64 `json:"median_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MeanMs   float64 `json:"mean_ms"`
	// CPUMs is the process CPU time (user + system) per run: less sensitive
	// than wall time to other processes competing for the cores, and with
	// one intra-op thread the cost of the inference itself.
	CPUMs float64 `json:"cpu_ms"`
	Runs  int     `json:"runs"`
}

// measureLatency times runs of r on x after warmup runs.
func measureLatency(r *runner, x []float32, warmup, runs int) (Latency, error) {
	for range warmup {
		if _, err := r.run(x); err != nil {
			return Latency{}, err
		}
	}
	times := make([]float64, runs)
	sum := 0.0
	for i := range times {
		start := time.Now()
		if _, err := r.run(x); err != nil {
			return Latency{}, err
		}
		times[i] = float64(time.Since(start).Microseconds()) / 1000
		sum += times[i]
	}
	sort.Float64s(times)
	return Latency{MedianMs: percentileOf(times, 0.5), P99Ms: percentileOf(times, 0.99), MeanMs: sum / float64(runs), Runs: runs}, nil
}

// percentileOf interpolates the q-quantile of sorted values.
func percentileOf(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (sorted[hi]-sorted[lo])*(pos-float64(lo))
}

// Cosine is the cosine similarity of two equally long vectors; two zero
// vectors are identical (1), one zero vector against another is 0.
func Cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	if na == 0 && nb == 0 {
		return 1
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// outputCosines runs both models on every input and returns, per output of
// the reference, the mean cosine similarity across inputs.
func outputCosines(ref, test *runner, inputs [][]float32) (map[string]float64, error) {
	if len(inputs) == 0 {
		return nil, fmt.Errorf("quantize: no inputs to compare outputs on")
	}
	sums := make([]float64, len(ref.outputs))
	for _, x := range inputs {
		a, err := ref.run(x)
		if err != nil {
			return nil, err
		}
		b, err := test.run(x)
		if err != nil {
			return nil, err
		}
		for i := range a {
			if len(a[i]) != len(b[i]) {
				return nil, fmt.Errorf("quantize: output %q has %d values in the float model and %d in the quantized one", ref.outputs[i], len(a[i]), len(b[i]))
			}
			sums[i] += Cosine(a[i], b[i])
		}
	}
	out := make(map[string]float64, len(sums))
	for i, s := range sums {
		out[ref.outputs[i]] = s / float64(len(inputs))
	}
	return out, nil
}

// minCosine is the smallest value of a cosine map (1 when empty).
func minCosine(c map[string]float64) float64 {
	m := 1.0
	for _, v := range c {
		m = math.Min(m, v)
	}
	return m
}

// measureLatencyRaw returns the wall time of each of n runs and the process
// CPU time of all of them, in milliseconds.
func measureLatencyRaw(r *runner, x []float32, n int) ([]float64, float64, error) {
	out := make([]float64, n)
	cpu0 := processCPU()
	for i := range out {
		start := time.Now()
		if _, err := r.run(x); err != nil {
			return nil, 0, err
		}
		out[i] = float64(time.Since(start).Microseconds()) / 1000
	}
	return out, processCPU() - cpu0, nil
}

// processCPU is the process's user + system CPU time in milliseconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}
