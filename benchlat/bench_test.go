package benchlat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(d)
	// numpy.percentile(range(1, 101), [50, 90, 99]) = 50.5, 90.1, 99.01
	want := Stats{P50: 50.5, P90: 90.1, P99: 99.01, Max: 100, Mean: 50.5, Std: math.Sqrt((100*100 - 1) / 12.0)}
	for name, pair := range map[string][2]float64{
		"p50": {s.P50, want.P50}, "p90": {s.P90, want.P90}, "p99": {s.P99, want.P99},
		"max": {s.Max, want.Max}, "mean": {s.Mean, want.Mean}, "std": {s.Std, want.Std},
	} {
		if math.Abs(pair[0]-pair[1]) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, pair[0], pair[1])
		}
	}
	if one := Summarize([]time.Duration{3 * time.Millisecond}); one.P50 != 3 || one.P99 != 3 || one.Std != 0 {
		t.Errorf("single sample: %+v", one)
	}
}

// fakeTarget sleeps a fixed time per request and records peak concurrency.
type fakeTarget struct {
	delay    time.Duration
	inFlight atomic.Int32
	peak     atomic.Int32
	calls    atomic.Int32
	failAt   int32
}

func (f *fakeTarget) Name() string { return "fake" }
func (f *fakeTarget) Mode() string { return "in-process" }
func (f *fakeTarget) RSS(context.Context) (int64, error) {
	return 42 << 20, nil
}
func (f *fakeTarget) Detect(ctx context.Context, img []byte) (Sample, error) {
	n := f.calls.Add(1)
	if f.failAt > 0 && n == f.failAt {
		return Sample{}, errors.New("boom")
	}
	cur := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		p := f.peak.Load()
		if cur <= p || f.peak.CompareAndSwap(p, cur) {
			break
		}
	}
	time.Sleep(f.delay)
	return Sample{Session: f.delay / 2}, nil
}

func TestMeasure(t *testing.T) {
	f := &fakeTarget{delay: 2 * time.Millisecond}
	r, err := Measure(context.Background(), f, [][]byte{{1}, {2}}, Options{N: 40, Warmup: 5, Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	if f.calls.Load() != 45 || f.peak.Load() != 4 {
		t.Fatalf("calls %d peak %d, want 45 and 4", f.calls.Load(), f.peak.Load())
	}
	if r.N != 40 || r.Concurrency != 4 || r.P50MS < 2 || r.MaxMS < r.P99MS || r.P99MS < r.P50MS || r.RSSBytes != 42<<20 {
		t.Fatalf("result %+v", r)
	}
	if r.SessionP50MS < 0.9 || r.SessionP50MS > 1.5 {
		t.Fatalf("session p50 %v, want about 1 ms", r.SessionP50MS)
	}
	// Four in flight, 2 ms each: well above the 500/s one at a time would give.
	if r.Throughput < 600 {
		t.Fatalf("throughput %.0f/s with 4 in flight", r.Throughput)
	}

	f = &fakeTarget{delay: time.Millisecond, failAt: 20}
	if _, err := Measure(context.Background(), f, [][]byte{{1}}, Options{N: 40, Warmup: 5, Concurrency: 2}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("failing target: %v", err)
	}
	for _, o := range []Options{{N: 0, Concurrency: 1}, {N: 1, Concurrency: 0}, {N: 1, Concurrency: 1, Warmup: -1}} {
		if _, err := Measure(context.Background(), f, [][]byte{{1}}, o); err == nil {
			t.Fatalf("options %+v accepted", o)
		}
	}
	if _, err := Measure(context.Background(), f, nil, Options{N: 1, Concurrency: 1}); err == nil {
		t.Fatal("no images accepted")
	}
}

func TestParseTegrastats(t *testing.T) {
	tests := []struct {
		name   string
		line   string
		watts  float64
		temp   float64
		hasPow bool
	}{
		{"orin jetpack 6",
			"11-21-2023 10:20:30 RAM 2345/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [1%@729,0%@729] EMC_FREQ 0%@2133 GR3D_FREQ 0%@[305,305] cpu@45.656C soc2@44.968C gpu@44.75C tj@46.5C VDD_IN 4979mW/4979mW VDD_CPU_GPU_CV 517mW/517mW VDD_SOC 1437mW/1437mW",
			4.979, 46.5, true},
		{"nano jetpack 4",
			"RAM 1645/3956MB (lfb 4x2MB) SWAP 0/1978MB (cached 0MB) CPU [9%@102,7%@102,off,off] EMC_FREQ 0% GR3D_FREQ 0% PLL@27C CPU@29.5C PMIC@100C GPU@28C AO@35.5C thermal@28.75C POM_5V_IN 1864/1864 POM_5V_GPU 0/0 POM_5V_CPU 288/288",
			1.864, 35.5, true}, // PMIC@100C is a placeholder, AO@35.5C the hottest real sensor
		{"rails without a total", "GPU@40C VDD_GPU 1000mW/1000mW VDD_CPU 500mW/500mW", 1.5, 40, true},
		{"switched-off sensor", "CV0@-256C GPU@41C", 0, 41, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ParseTegrastats(tc.line)
			if r.HasPower != tc.hasPow || math.Abs(r.Watts-tc.watts) > 1e-9 || !r.HasTemp || r.Celsius != tc.temp {
				t.Fatalf("reading %+v, want %.3f W %.1f °C", r, tc.watts, tc.temp)
			}
		})
	}
}

// TestTegrastatsFixtures parses the tegrastats lines recorded on real
// Jetsons (testdata/tegrastats.txt, each with its source) and checks the
// power and temperature each states.
func TestTegrastatsFixtures(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "tegrastats.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var device, source string
	var watts, celsius float64
	var expect bool
	n := 0
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "source: "):
			source, expect = strings.TrimPrefix(line, "source: "), false
		case strings.HasPrefix(line, "device: "):
			device = strings.TrimPrefix(line, "device: ")
		case strings.HasPrefix(line, "expect: "):
			if _, err := fmt.Sscanf(strings.TrimPrefix(line, "expect: "), "%g %g", &watts, &celsius); err != nil {
				t.Fatalf("testdata/tegrastats.txt:%d: %v", i+1, err)
			}
			expect = true
		default:
			if !expect || source == "" || device == "" {
				t.Fatalf("testdata/tegrastats.txt:%d: a line without its source, device and expect fields", i+1)
			}
			r := ParseTegrastats(line)
			if !r.HasPower || math.Abs(r.Watts-watts) > 1e-9 || !r.HasTemp || r.Celsius != celsius {
				t.Errorf("%s (%s): got %+v, want %.3f W and %g °C", device, source, r, watts, celsius)
			}
			expect = false
			n++
		}
	}
	if n < 3 {
		t.Fatalf("testdata/tegrastats.txt holds %d lines, want the Orin, Xavier and TX2 recordings", n)
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSysfsPower(t *testing.T) {
	root := t.TempDir()
	hw := "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/"
	writeFiles(t, root, map[string]string{
		hw + "in1_label": "VDD_IN\n", hw + "in1_input": "5000\n", hw + "curr1_input": "1200\n",
		hw + "in2_label": "VDD_CPU_GPU_CV\n", hw + "in2_input": "5000\n", hw + "curr2_input": "300\n",
		"sys/class/thermal/thermal_zone0/temp": "45500\n",
		"sys/class/thermal/thermal_zone1/temp": "51250\n",
		"sys/class/thermal/thermal_zone2/temp": "-256000\n",
		// The PMIC zone reads a constant 100 C; it is not a temperature.
		"sys/class/thermal/thermal_zone3/temp": "100000\n",
		"sys/class/thermal/thermal_zone3/type": "PMIC-Die\n",
	})
	src := detectPower(root, t.TempDir()) // a PATH without tegrastats
	if src == nil || src.Name != "sysfs" {
		t.Fatalf("source %+v, want sysfs", src)
	}
	r := src.readSysfs()
	if !r.HasPower || r.Watts != 6 || !r.HasTemp || r.Celsius != 51.25 {
		t.Fatalf("reading %+v, want 6 W (VDD_IN 5 V x 1.2 A) and 51.25 °C", r)
	}
	src.interval = 5 * time.Millisecond
	s := src.start()
	time.Sleep(30 * time.Millisecond)
	if got := s.stop(); got.Watts != 6 || got.Celsius != 51.25 {
		t.Fatalf("sampled %+v", got)
	}

	old := t.TempDir()
	writeFiles(t, old, map[string]string{
		"sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power0_input": "2400\n",
		"sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_0":     "POM_5V_IN\n",
		"sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/in_power1_input": "300\n",
		"sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0/rail_name_1":     "POM_5V_GPU\n",
	})
	if r := (&PowerSource{sysRoot: old}).readSysfs(); r.Watts != 2.4 || r.HasTemp {
		t.Fatalf("jetpack 4 reading %+v, want 2.4 W", r)
	}
	if detectPower(t.TempDir(), t.TempDir()) != nil {
		t.Fatal("found power on an empty tree")
	}

	// A tegrastats on the PATH wins over sysfs.
	bin := t.TempDir()
	writeFiles(t, bin, map[string]string{"tegrastats": "#!/bin/sh\nwhile :; do echo 'GPU@40C VDD_IN 3000mW/3000mW'; sleep 0.01; done\n"})
	if err := os.Chmod(filepath.Join(bin, "tegrastats"), 0o755); err != nil {
		t.Fatal(err)
	}
	ts := detectPower(root, bin)
	if ts == nil || ts.Name != "tegrastats" {
		t.Fatalf("source %+v, want tegrastats", ts)
	}
	ts.interval = 10 * time.Millisecond
	s = ts.start()
	time.Sleep(150 * time.Millisecond)
	if got := s.stop(); got.Watts != 3 || got.Celsius != 40 {
		t.Fatalf("tegrastats sampled %+v", got)
	}
}

// fakeServer answers like gidedge serve.
func fakeServer(t *testing.T, token string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"ok","model":"nanodet_m_320"}`)
	})
	mux.HandleFunc("POST /v1/detect", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"error":"serve: missing or wrong bearer token"}`)
			return
		}
		if r.Header.Get("Content-Type") != "image/jpeg" {
			w.WriteHeader(415)
			return
		}
		fmt.Fprint(w, `{"model":"nanodet_m_320","detections":[],"timing_ms":{"decode":0.002,"infer":0.004}}`)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "# HELP process_resident_memory_bytes x\nprocess_resident_memory_bytes 1.2345678e+08\n")
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestHTTPTarget(t *testing.T) {
	srv := fakeServer(t, "tok")
	jpeg := []byte{0xff, 0xd8, 0xff, 0xe0}
	tg, err := NewHTTPTarget(context.Background(), srv.URL, "tok", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if tg.Name() != "nanodet_m_320" || tg.Mode() != "end-to-end" {
		t.Fatalf("target %s %s", tg.Name(), tg.Mode())
	}
	r, err := Measure(context.Background(), tg, [][]byte{jpeg}, Options{N: 10, Warmup: 2, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if r.SessionP50MS != 0.004 || r.RSSBytes != 123456780 || r.OverheadP50MS <= 0 || r.OverheadP50MS > r.P50MS {
		t.Fatalf("result %+v", r)
	}
	bad, _ := NewHTTPTarget(context.Background(), srv.URL, "wrong", 1)
	if _, err := bad.Detect(context.Background(), jpeg); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: %v", err)
	}
	for _, u := range []string{"localhost:8080", "ftp://x", "http://127.0.0.1:1"} {
		if _, err := NewHTTPTarget(context.Background(), u, "", 1); err == nil {
			t.Fatalf("url %q accepted", u)
		}
	}
}

func TestReport(t *testing.T) {
	pw := 7.5
	mAP := 0.21
	rep := Report{N: 10, Warmup: 1, Images: 3, Host: Host{OS: "linux", Arch: "arm64", CPUs: 6, Board: "NVIDIA Jetson Orin Nano"}}
	rep.Add(Result{Model: "m", Mode: "in-process", Concurrency: 1, P50MS: 5, P99MS: 7, Throughput: 190, PowerW: &pw, MAP: &mAP})
	rep.Add(Result{Model: "m", Mode: "end-to-end", Concurrency: 1, P50MS: 5.25, P99MS: 8, Throughput: 180})
	rep.Finish()
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got["p50_ms"] != 5.0 || got["p99_ms"] != 7.0 || got["throughput"] != 190.0 {
		t.Fatalf("top-level numbers: %v %v %v", got["p50_ms"], got["p99_ms"], got["throughput"])
	}
	if len(rep.Overheads) != 1 || rep.Overheads[0].P50MS != 0.25 {
		t.Fatalf("overheads %+v", rep.Overheads)
	}
	buf.Reset()
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"p50 ms", "end-to-end", "power W", "7.50", "mAP", "0.210", "+0.25 ms", "board NVIDIA Jetson Orin Nano"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func FuzzParseTegrastats(f *testing.F) {
	f.Add("RAM 1645/3956MB CPU@29.5C PMIC@100C POM_5V_IN 1864/1864 POM_5V_GPU 0/0")
	f.Add("cpu@45.656C gpu@-256C VDD_IN 4979mW/4979mW VDD_SOC 1437mW/1437mW")
	f.Add("CV0@-256C CPU@44.562C tj@44.343C VDD_GPU_SOC 2340mW/2340mW VIN_SYS_5V0 4025mW/4025mW NC 0mW/0mW")
	f.Fuzz(func(t *testing.T, line string) {
		r := ParseTegrastats(line)
		if math.IsNaN(r.Watts) || r.Watts < 0 || (r.HasTemp && math.IsNaN(r.Celsius)) {
			t.Fatalf("reading %+v from %q", r, line)
		}
	})
}

// logTarget appends its name to a shared log on every request.
type logTarget struct {
	name string
	log  *[]string
	mu   *sync.Mutex
}

func (l logTarget) Name() string                       { return l.name }
func (l logTarget) Mode() string                       { return "in-process" }
func (l logTarget) RSS(context.Context) (int64, error) { return 0, errors.New("no RSS") }
func (l logTarget) Detect(context.Context, []byte) (Sample, error) {
	l.mu.Lock()
	*l.log = append(*l.log, l.name)
	l.mu.Unlock()
	return Sample{}, nil
}

func TestMeasureInterleaved(t *testing.T) {
	var log []string
	var mu sync.Mutex
	a, b := logTarget{"A", &log, &mu}, logTarget{"B", &log, &mu}
	rs, err := MeasureInterleaved(context.Background(), []Target{a, b}, [][]byte{{1}}, Options{N: 10, Warmup: 1, Concurrency: 1}, 4)
	if err != nil {
		t.Fatal(err)
	}
	// Warm-up A, B; then rounds A B | B A | A B | B A with chunks 3, 3, 2, 2.
	var runs []string
	for i, name := range log {
		if i == 0 || log[i-1] != name {
			runs = append(runs, name)
		}
	}
	if got := strings.Join(runs, ""); got != "ABABABA" || len(log) != 22 {
		t.Fatalf("call order %v (%d calls), want runs ABABABA and 22 calls", runs, len(log))
	}
	if rs[0].Model != "A" || rs[1].Model != "B" || rs[0].N != 10 || rs[0].SessionP50MS != 0 || rs[0].RSSBytes != 0 {
		t.Fatalf("results %+v", rs)
	}
	if _, err := MeasureInterleaved(context.Background(), []Target{a}, [][]byte{{1}}, Options{N: 3, Concurrency: 1}, 4); err == nil {
		t.Fatal("more rounds than requests accepted")
	}
}

func TestReportSaysEmulated(t *testing.T) {
	rep := Report{N: 1, Images: 1, Host: Host{OS: "linux", Arch: "arm64", CPUs: 2, Emulation: "arm64 program under qemu-aarch64-static on x86_64 (the kernel is x86_64 (/proc/sys/kernel/arch))"}}
	rep.Add(Result{Model: "m", Mode: "in-process", Concurrency: 1, P50MS: 500})
	rep.Finish()
	var table, js bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "EMULATED: arm64 program under qemu-aarch64-static") || !strings.Contains(table.String(), "not arm64 hardware") {
		t.Errorf("table does not say it ran under emulation:\n%s", table.String())
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Host Host `json:"host"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil || got.Host.Emulation != rep.Host.Emulation {
		t.Fatalf("JSON host %+v (%v), want the emulation line", got.Host, err)
	}
	// A native run prints no such line.
	rep.Host.Emulation = ""
	table.Reset()
	if err := rep.WriteTable(&table); err != nil || strings.Contains(table.String(), "EMULATED") {
		t.Fatalf("native table says EMULATED (%v):\n%s", err, table.String())
	}
}
