// Package benchlat measures detector latency the way a user experiences it:
// in-process (package benchlat/inproc: decode, preprocess, ONNX Runtime run
// and post-processing in this process) and end-to-end (HTTPTarget: an image
// POSTed to a running `gidedge serve`, reply read in full). It reports
// p50/p90/p99/max, mean ± standard deviation, throughput, the resident memory
// of the process doing the work and, on a Jetson, board power and
// temperature (tegrastats or sysfs).
//
// This package is pure Go (no cgo) so it also builds for the device tools;
// the in-process target lives in benchlat/inproc.
//
// Error policy: errors are returned with a "benchlat:" prefix and the
// target, URL or file at fault; a request that fails during a measurement
// fails the measurement (a benchmark that skips errors reports nonsense).
package benchlat

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Sample is what one request reports beyond its wall time.
type Sample struct {
	// Session is the ONNX Runtime run alone, when the target knows it.
	Session time.Duration
	// Overhead is the part of an end-to-end request the server's own stage
	// timings do not cover (HTTP, routing, body transfer, JSON), measured
	// within the request, so background load hits both sides alike.
	Overhead time.Duration
}

// Target is something that detects objects in an encoded image.
type Target interface {
	Name() string // model name
	Mode() string // "in-process" or "end-to-end"
	Detect(ctx context.Context, image []byte) (Sample, error)
	// RSS is the resident memory of the process that runs the model.
	RSS(ctx context.Context) (int64, error)
}

// Options set the size of one measurement.
type Options struct {
	N           int // timed requests
	Warmup      int // untimed requests first
	Concurrency int // requests in flight at once
	// Power samples board power and temperature during the timed requests
	// (nil: no sampling).
	Power *PowerSource
}

// Result is one measurement. Durations are in milliseconds.
type Result struct {
	Model       string  `json:"model"`
	Mode        string  `json:"mode"`
	Concurrency int     `json:"concurrency"`
	N           int     `json:"n"`
	P50MS       float64 `json:"p50_ms"`
	P90MS       float64 `json:"p90_ms"`
	P99MS       float64 `json:"p99_ms"`
	MaxMS       float64 `json:"max_ms"`
	MeanMS      float64 `json:"mean_ms"`
	StdMS       float64 `json:"std_ms"`
	Throughput  float64 `json:"throughput"` // images per second
	// SessionP50MS is the median ONNX Runtime run alone (0 when unknown).
	SessionP50MS float64 `json:"session_p50_ms,omitempty"`
	// OverheadP50MS is the median Sample.Overhead (end-to-end rows only).
	OverheadP50MS float64 `json:"overhead_p50_ms,omitempty"`
	RSSBytes      int64   `json:"rss_bytes,omitempty"`
	// PowerW and TempC are set on boards with power rails or thermal zones.
	PowerW *float64 `json:"power_w,omitempty"`
	TempC  *float64 `json:"temp_c,omitempty"`
	// MAP and MAP50 are COCO mAP@[.5:.95] and mAP@.5 on --data (nil without).
	MAP   *float64 `json:"map,omitempty"`
	MAP50 *float64 `json:"map50,omitempty"`
}

// Measure sends opts.Warmup then opts.N requests to t, cycling through
// images, with opts.Concurrency requests in flight.
func Measure(ctx context.Context, t Target, images [][]byte, opts Options) (Result, error) {
	rs, err := MeasureInterleaved(ctx, []Target{t}, images, opts, 1)
	if err != nil {
		return Result{}, err
	}
	return rs[0], nil
}

// MeasureInterleaved measures several targets in rounds: each round sends
// every target its share of opts.N requests, in an order that reverses every
// round. On a shared or throttling machine the targets then see the same
// background load, so their difference (a server's overhead over the same
// model in-process) is not swamped by load that changed between two long
// runs. Every target gets opts.Warmup untimed requests first.
func MeasureInterleaved(ctx context.Context, targets []Target, images [][]byte, opts Options, rounds int) ([]Result, error) {
	switch {
	case len(targets) == 0:
		return nil, errors.New("benchlat: no targets to measure")
	case len(images) == 0:
		return nil, errors.New("benchlat: no images to send")
	case opts.N < 1:
		return nil, fmt.Errorf("benchlat: n %d, want at least 1", opts.N)
	case opts.Warmup < 0:
		return nil, fmt.Errorf("benchlat: warmup %d, want >= 0", opts.Warmup)
	case opts.Concurrency < 1:
		return nil, fmt.Errorf("benchlat: concurrency %d, want at least 1", opts.Concurrency)
	case rounds < 1 || rounds > opts.N:
		return nil, fmt.Errorf("benchlat: rounds %d, want 1..n (%d)", rounds, opts.N)
	}
	type acc struct {
		lat, sess, over []time.Duration
		wall            time.Duration
		watts           []float64
		celsius         float64
		hasTemp         bool
	}
	accs := make([]acc, len(targets))
	for _, t := range targets {
		if _, _, _, err := run(ctx, t, images, opts.Warmup, opts.Concurrency); err != nil {
			return nil, fmt.Errorf("benchlat: %s %s warm-up: %w", t.Name(), t.Mode(), err)
		}
	}
	for r := range rounds {
		chunk := opts.N/rounds + btoi(r < opts.N%rounds)
		for k := range targets {
			i := k
			if r%2 == 1 {
				i = len(targets) - 1 - k
			}
			t, a := targets[i], &accs[i]
			var sampler *powerSampler
			if opts.Power != nil {
				sampler = opts.Power.start()
			}
			start := time.Now()
			lat, sess, over, err := run(ctx, t, images, chunk, opts.Concurrency)
			a.wall += time.Since(start)
			if sampler != nil {
				p := sampler.stop()
				if p.HasPower {
					a.watts = append(a.watts, p.Watts)
				}
				if p.HasTemp && (!a.hasTemp || p.Celsius > a.celsius) {
					a.celsius, a.hasTemp = p.Celsius, true
				}
			}
			if err != nil {
				return nil, fmt.Errorf("benchlat: %s %s: %w", t.Name(), t.Mode(), err)
			}
			a.lat = append(a.lat, lat...)
			a.sess = append(a.sess, sess...)
			a.over = append(a.over, over...)
		}
	}
	results := make([]Result, len(targets))
	for i, t := range targets {
		a := accs[i]
		s := Summarize(a.lat)
		r := Result{
			Model: t.Name(), Mode: t.Mode(), Concurrency: opts.Concurrency, N: opts.N,
			P50MS: s.P50, P90MS: s.P90, P99MS: s.P99, MaxMS: s.Max, MeanMS: s.Mean, StdMS: s.Std,
			Throughput: float64(opts.N) / a.wall.Seconds(),
		}
		if len(a.sess) == len(a.lat) {
			r.SessionP50MS = Summarize(a.sess).P50
		}
		if len(a.over) == len(a.lat) {
			r.OverheadP50MS = Summarize(a.over).P50
		}
		if rss, err := t.RSS(ctx); err == nil {
			r.RSSBytes = rss
		}
		if len(a.watts) > 0 {
			var sum float64
			for _, w := range a.watts {
				sum += w
			}
			avg := sum / float64(len(a.watts))
			r.PowerW = &avg
		}
		if a.hasTemp {
			c := a.celsius
			r.TempC = &c
		}
		results[i] = r
	}
	return results, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// run sends n requests with c in flight and returns each one's latency and,
// when the target reports them, its session time and server overhead.
func run(ctx context.Context, t Target, images [][]byte, n, c int) (lat, sess, over []time.Duration, err error) {
	if n == 0 {
		return nil, nil, nil, nil
	}
	lat = make([]time.Duration, n)
	sess = make([]time.Duration, n)
	over = make([]time.Duration, n)
	var next atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(c, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				s, err := t.Detect(ctx, images[i%len(images)])
				lat[i] = time.Since(t0)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("request %d: %w", i, err) })
					cancel()
					return
				}
				sess[i], over[i] = s.Session, s.Overhead
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, nil, nil, firstErr
	}
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, nil, nil, err
	}
	positive := func(d time.Duration) bool { return d > 0 }
	if !slices.ContainsFunc(sess, positive) {
		sess = nil // the target does not report session times
	}
	if !slices.ContainsFunc(over, positive) {
		over = nil
	}
	return lat, sess, over, nil
}

// Stats summarise latencies in milliseconds.
type Stats struct {
	P50, P90, P99, Max, Mean, Std float64
}

// Summarize computes percentiles (linear interpolation between closest
// ranks, as numpy's default), mean and population standard deviation.
func Summarize(d []time.Duration) Stats {
	if len(d) == 0 {
		return Stats{}
	}
	v := make([]float64, len(d))
	var sum float64
	for i, x := range d {
		v[i] = float64(x) / float64(time.Millisecond)
		sum += v[i]
	}
	slices.Sort(v)
	mean := sum / float64(len(v))
	var sq float64
	for _, x := range v {
		sq += (x - mean) * (x - mean)
	}
	return Stats{
		P50: Percentile(v, 50), P90: Percentile(v, 90), P99: Percentile(v, 99),
		Max: v[len(v)-1], Mean: mean, Std: math.Sqrt(sq / float64(len(v))),
	}
}

// Percentile of sorted values, p in 0..100.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(rank))
	hi := min(lo+1, len(sorted)-1)
	return sorted[lo] + (rank-float64(lo))*(sorted[hi]-sorted[lo])
}
