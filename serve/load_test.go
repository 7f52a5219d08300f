package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"image"
	"image/png"
	"io"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gidedge/gidedge/benchlat"
)

// loadRequest is one kind of request the load test sends.
type loadRequest struct {
	kind        string
	path        string
	contentType string
	body        []byte
}

func (r loadRequest) send(c *http.Client, base string) (int, time.Duration, error) {
	start := time.Now()
	resp, err := c.Post(base+r.path, r.contentType, bytes.NewReader(r.body))
	if err != nil {
		return 0, time.Since(start), err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), err
}

// noisyPNG is a w x h PNG of noise: it compresses badly, so it is a large
// body that really costs its pixels to decode.
func noisyPNG(t testing.TB, w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	x := uint32(12345)
	for i := range img.Pix {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		img.Pix[i] = uint8(x)
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// nestedInferBody is a KServe request for NanoDet's [1,3,320,320] input,
// nested as the shape: about 1.3 MB of JSON.
func nestedInferBody(t testing.TB) []byte {
	var b strings.Builder
	b.WriteString(`{"inputs":[{"name":"input.1","shape":[1,3,320,320],"datatype":"FP32","data":[[`)
	for c := range 3 {
		if c > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('[')
		for y := range 320 {
			if y > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('[')
			for x := range 320 {
				if x > 0 {
					b.WriteByte(',')
				}
				b.WriteString(strconv.FormatFloat(float64((x+y+c)%7)/7-0.5, 'f', 2, 32))
			}
			b.WriteByte(']')
		}
		b.WriteByte(']')
	}
	b.WriteString(`]]}]}`)
	return []byte(b.String())
}

// sequential sends normal requests one after another for d and returns
// their latencies.
func sequential(t *testing.T, c *http.Client, base string, req loadRequest, d time.Duration) []time.Duration {
	t.Helper()
	var lat []time.Duration
	for end := time.Now().Add(d); time.Now().Before(end); {
		code, d, err := req.send(c, base)
		if err != nil || code != 200 {
			t.Fatalf("unloaded request: %d %v", code, err)
		}
		lat = append(lat, d)
	}
	return lat
}

// TestLiveLoad is the standing load test: a loopback server at twice its
// measured capacity, with normal requests mixed with images above the pixel
// limit, large images it must decode, and large nested KServe bodies. It
// holds when
//   - every answer is 200, a 4xx or 503 (nothing else, no broken connection),
//   - the p99 latency of the normal requests answered under load stays within
//     3x the unloaded p99,
//   - resident memory, once the server has been idle a moment, is within 10 %
//     of what it was after warm-up (which sent every kind of request once).
//
// Short load windows alternate with unloaded windows of sequential
// requests half as long, so that on a 2-core CI machine, where other test
// binaries start and stop and background load drifts within seconds, both
// p99s (each pooled over all its windows) sample the same background. The
// server runs one session of one thread with a queue of one: what the
// bounded queue promises is that an admitted request waits for at most one
// other, so 3x is that bound with headroom for CPU shared with decoding and
// the load generator. Full: 8 cycles of 3 s load and 1.5 s unloaded, 16
// clients; -short: 3 cycles of 1.5 s and 0.75 s.
//
// The p99 bound is a latency figure, and latency figures are measured, not
// asserted, where other test binaries share the CPU: CI runs this test in
// parallel with the rest of the suite and again under the race detector,
// where one CI run measured a ratio of 4.4 that the same code holds at 1.6
// alone. So the suite logs the ratio and enforces it only with
// GIDEDGE_LOAD_STRICT=1, which scripts/bench_load.sh sets when it runs this
// test alone; the status codes, the 413s and the memory bound hold always.
func TestLiveLoad(t *testing.T) {
	cycles, loadWindow := 8, 3*time.Second
	if testing.Short() {
		cycles, loadWindow = 3, 1500*time.Millisecond
	}
	probeWindow := loadWindow / 2
	s := newTestServer(t, Config{Sessions: 1, QueueSize: 1, IntraOpThreads: 1})
	l := startLive(t, s, context.Background())
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}}

	normal := loadRequest{"normal", "/v1/detect", "image/jpeg", personJPEG(t)}
	oversized := loadRequest{"oversized", "/v1/detect", "image/png", hugePNG(t)}
	large := loadRequest{"large image", "/v1/detect", "image/png", noisyPNG(t, 1600, 1200)}
	infer := loadRequest{"large json", "/v2/models/nanodet_m_320/infer", "application/json", nestedInferBody(t)}
	mix := func(i int) loadRequest {
		switch i % 20 {
		case 0:
			return oversized
		case 5, 15:
			return large
		case 10:
			return infer
		}
		return normal
	}

	// Warm-up: every kind once (allocators and pools reach their working
	// size), then the memory baseline.
	for _, r := range []loadRequest{normal, oversized, large, infer, normal} {
		if code, _, err := r.send(c, l.url); err != nil || (code != 200 && code != 413) {
			t.Fatalf("warm-up %s: %d %v", r.kind, code, err)
		}
	}
	runtime.GC()
	rssBefore, err := benchlat.SelfRSS()

	if err != nil {
		t.Fatal(err)
	}

	// Capacity: two clients back to back for a moment.
	var served atomic.Int64
	capStart := time.Now()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for time.Since(capStart) < 2*time.Second {
				if code, _, err := normal.send(c, l.url); err == nil && code == 200 {
					served.Add(1)
				}
			}
		})
	}
	wg.Wait()
	capacity := float64(served.Load()) / time.Since(capStart).Seconds()
	rate := 2 * capacity

	type outcome struct {
		kind string
		code int
		lat  time.Duration
		err  error
	}
	skipped, arrival := 0, 0
	// window offers load at rate for d with 16 clients (open loop) and
	// returns every outcome once every request sent has been answered.
	window := func(d time.Duration) []outcome {
		results := make(chan outcome, 1<<14)
		jobs := make(chan int)
		for range 16 {
			wg.Go(func() {
				for i := range jobs {
					r := mix(i)
					code, lat, err := r.send(c, l.url)
					results <- outcome{r.kind, code, lat, err}
				}
			})
		}
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			<-tick.C
			select {
			case jobs <- arrival:
				arrival++
			default:
				skipped++ // every client busy: the arrival is lost, as an impatient user's would be
			}
		}
		tick.Stop()
		close(jobs)
		wg.Wait()
		close(results)
		var out []outcome
		for o := range results {
			out = append(out, o)
		}
		return out
	}
	// normalLatencies are the latencies of the normal requests answered 200.
	normalLatencies := func(os []outcome) []time.Duration {
		var lat []time.Duration
		for _, o := range os {
			if o.kind == "normal" && o.code == 200 {
				lat = append(lat, o.lat)
			}
		}
		return lat
	}
	var (
		all         []outcome
		unloadedLat []time.Duration
		ratios      []float64
	)
	probe := sequential(t, c, l.url, normal, probeWindow)
	unloadedLat = append(unloadedLat, probe...)
	for range cycles {
		os := window(loadWindow)
		all = append(all, os...)
		next := sequential(t, c, l.url, normal, probeWindow)
		unloadedLat = append(unloadedLat, next...)
		if lat := normalLatencies(os); len(lat) > 0 {
			around := max(benchlat.Summarize(probe).P99, benchlat.Summarize(next).P99)
			ratios = append(ratios, benchlat.Summarize(lat).P99/around)
		}
		probe = next
	}

	counts := map[string]map[int]int{}
	for _, o := range all {
		if o.err != nil {
			t.Errorf("%s request failed: %v", o.kind, o.err)
			continue
		}
		if counts[o.kind] == nil {
			counts[o.kind] = map[int]int{}
		}
		counts[o.kind][o.code]++
		switch {
		case o.code == 200 || o.code == 503 || (o.code >= 400 && o.code < 500):
		default:
			t.Errorf("%s request answered %d", o.kind, o.code)
		}
		if o.kind == "oversized" && o.code != 413 && o.code != 503 {
			t.Errorf("oversized image answered %d, want 413", o.code)
		}
	}
	normalLat := normalLatencies(all)
	unloaded := benchlat.Summarize(unloadedLat)
	loaded := benchlat.Summarize(normalLat)
	slices.Sort(ratios)
	median := 0.0
	if len(ratios) > 0 {
		median = ratios[len(ratios)/2]
		if len(ratios)%2 == 0 {
			median = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
		}
	}

	// Settle: the server trims its heaps once idle; allow a few seconds.
	var rssAfter int64
	deadline := time.Now().Add(idleTrimAfter + 5*time.Second)
	for {
		time.Sleep(300 * time.Millisecond)
		if rssAfter, err = benchlat.SelfRSS(); err != nil {
			t.Fatal(err)
		}
		if float64(rssAfter) <= 1.10*float64(rssBefore) || time.Now().After(deadline) {
			break
		}
	}

	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	summary, _ := json.Marshal(counts)
	t.Logf("load: capacity %.1f req/s, offered %.1f req/s, %d x %s of load (%d arrivals lost with all 16 clients busy); answers %s",
		capacity, rate, cycles, loadWindow, skipped, summary)
	t.Logf("load: normal p50 %.1f ms, p99 %.1f ms under load (%d answered); unloaded p50 %.1f ms, p99 %.1f ms (%d requests); p99 ratio %.2f (limit 3)",
		loaded.P50, loaded.P99, len(normalLat), unloaded.P50, unloaded.P99, len(unloadedLat), loaded.P99/unloaded.P99)
	t.Logf("load: per window, p99 under load / p99 of the unloaded windows around it (sorted): %.2f, median %.2f", ratios, median)
	t.Logf("load: RSS %.0f MB after warm-up, %.0f MB after settling (%+.1f %%, limit +10 %%; Go heap %d MB in use, %d MB held)",
		float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20), 100*(float64(rssAfter)/float64(rssBefore)-1),
		ms.HeapInuse>>20, (ms.HeapSys-ms.HeapReleased)>>20)
	if len(normalLat) < 10 {
		t.Fatalf("only %d normal requests answered under load", len(normalLat))
	}
	if os.Getenv("GIDEDGE_LOAD_STRICT") == "1" && loaded.P99 > 3*unloaded.P99 {
		t.Errorf("normal p99 %.1f ms under load, more than 3x the unloaded p99 %.1f ms (per window: %.2f)", loaded.P99, unloaded.P99, ratios)
	}
	if float64(rssAfter) > 1.10*float64(rssBefore) {
		t.Errorf("RSS grew from %d to %d bytes (more than 10 %%) and stayed there", rssBefore, rssAfter)
	}
	if n := counts["oversized"][413]; n == 0 {
		t.Errorf("no oversized image was refused with 413: %v", counts["oversized"])
	}
	for _, kind := range []string{"normal", "large image", "large json"} {
		if counts[kind][200] == 0 {
			t.Errorf("no %s request succeeded under load: %v", kind, counts[kind])
		}
	}
}
