package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/gidedge/gidedge/benchlat"
	"github.com/gidedge/gidedge/benchlat/inproc"
	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/evaluate"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/serve"

	"github.com/gidedge/gidedge/internal/atomicfile"
)

// LatencyResult holds the fp32/int8 timings.
type LatencyResult struct {
	Images int           `json:"images"`
	Host   benchlat.Host `json:"host"`
	// InProcess and EndToEnd hold fp32 then int8.
	InProcess []benchlat.Result `json:"in_process"`
	EndToEnd  []benchlat.Result `json:"end_to_end"`
	Server    ServerCheck       `json:"server"`
	// Answers counts the successful /v1/detect replies of every server.
	Answers int `json:"answers"`
}

// ServerCheck is one request to the int8 server checked against the same
// model run in process.
type ServerCheck struct {
	URL     string `json:"url"`
	Model   string `json:"model"`
	Image   string `json:"image"`
	Status  int    `json:"status"`
	Answers int    `json:"answers"` // successful /v1/detect replies of this server
	// Detections is what the server found in Image; InProcess what the
	// same model found in this process (they should agree).
	Detections int  `json:"detections"`
	InProcess  int  `json:"in_process"`
	Agree      bool `json:"agree"`
}

// evaluateONNX runs an ONNX detector over every image of ds as the server
// would (decode, preprocess, ONNX Runtime, NMS), writes the COCO results
// file and scores it.
func evaluateONNX(ctx context.Context, model string, ds *dataset.Dataset, resultsPath string, progress io.Writer) (*ModelEval, error) {
	det, err := infer.Open(model, infer.Options{})
	if err != nil {
		return nil, err
	}
	defer det.Close()
	desc := det.Describe()
	catOf := make([]int64, len(desc.ClassNames))
	for i, n := range desc.ClassNames {
		idx, ok := ds.ClassIndex(n)
		if !ok {
			return nil, fmt.Errorf("model %s class %q is not a category of %s", model, n, ds.Root)
		}
		catOf[i] = ds.Categories[idx].ID
	}
	bar := newBar(progress, len(ds.Images), "images", "score "+filepath.Base(model))
	start := now()
	var dets []evaluate.Detection
	for _, im := range ds.Images {
		data, err := os.ReadFile(im.Path)
		if err != nil {
			return nil, err
		}
		res, err := det.DetectEncoded(ctx, data, inproc.EvalParams)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", im.Path, err)
		}
		for _, d := range res.Detections {
			dets = append(dets, evaluate.FromBox(im.ID, catOf[d.Class],
				dataset.Box{X1: float64(d.Box[0]), Y1: float64(d.Box[1]), X2: float64(d.Box[2]), Y2: float64(d.Box[3])}, float64(d.Score)))
		}
		barAdd(bar)
	}
	barDone(bar)
	secs := since(start)
	if err := evaluate.WriteResults(resultsPath, dets); err != nil {
		return nil, err
	}
	m, err := evaluate.COCO(ds, dets)
	if err != nil {
		return nil, err
	}
	e := modelEval("", desc.Name+" (ONNX Runtime)", model, resultsPath, m, secs, len(ds.Images))
	return &e, nil
}

func (r *runner) runLatency(ctx context.Context, st *stageRun) ([]string, error) {
	ps := r.paths
	test, err := dataset.Load(ps.synth, "test")
	if err != nil {
		return nil, err
	}
	images := make([][]byte, 0, len(test.Images))
	for _, im := range test.Images {
		data, err := os.ReadFile(im.Path)
		if err != nil {
			return nil, err
		}
		images = append(images, data)
	}
	lr := &LatencyResult{Images: len(images), Host: benchlat.HostInfo()}
	lr.Host.Runtime, lr.Host.Provider = r.res.Export.ORTVersion, infer.ProviderCPU
	bopts := benchlat.Options{N: r.plan.LatencyRuns, Warmup: r.plan.LatencyWarmup, Concurrency: 1}
	models := []string{ps.fp32, ps.int8}

	// Each model is timed in process and right after through a server, so
	// the two share the machine's state as far as a shared machine allows.
	for i, m := range models {
		t, err := inproc.Open(m, infer.Options{})
		if err != nil {
			return nil, err
		}
		res, err := benchlat.Measure(ctx, t, images, bopts)
		t.Close()
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(r.log, "      in-process  %-20s p50 %6.2f ms  p99 %6.2f ms  %6.1f images/s\n", res.Model, res.P50MS, res.P99MS, res.Throughput)
		lr.InProcess = append(lr.InProcess, res)
		res, check, err := r.measureServer(ctx, m, images, test.Images[0].Path, bopts, i == len(models)-1)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(r.log, "      end-to-end  %-20s p50 %6.2f ms  p99 %6.2f ms  %6.1f images/s  (%s)\n", res.Model, res.P50MS, res.P99MS, res.Throughput, check.URL)
		lr.EndToEnd = append(lr.EndToEnd, res)
		lr.Answers += check.Answers
		if i == len(models)-1 {
			lr.Server = *check
		}
	}
	if err := os.MkdirAll(ps.latency, 0o755); err != nil {
		return nil, err
	}
	rep := benchlat.Report{N: bopts.N, Warmup: bopts.Warmup, Images: len(images), Host: lr.Host}
	for _, res := range append(append([]benchlat.Result(nil), lr.InProcess...), lr.EndToEnd...) {
		rep.Add(res)
	}
	rep.Finish()
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		return nil, err
	}
	path := filepath.Join(ps.latency, "latency.json")
	if err := atomicfile.WriteFile(path, buf.Bytes()); err != nil {
		return nil, err
	}
	r.res.Latency = lr
	return []string{path}, nil
}

// measureServer starts a server for model on 127.0.0.1 (a free port), times
// it end to end, checks one reply against the in-process detector when
// check is set, and stops it.
func (r *runner) measureServer(ctx context.Context, model string, images [][]byte, checkImage string, bopts benchlat.Options, check bool) (benchlat.Result, *ServerCheck, error) {
	url, stop, err := r.startServer(ctx, model, "127.0.0.1:0")
	if err != nil {
		return benchlat.Result{}, nil, err
	}
	defer stop()
	t, err := benchlat.NewHTTPTarget(ctx, url, "", 1)
	if err != nil {
		return benchlat.Result{}, nil, err
	}
	defer t.Close()
	res, err := benchlat.Measure(ctx, t, images, bopts)
	if err != nil {
		return benchlat.Result{}, nil, err
	}
	sc := &ServerCheck{URL: url, Model: t.Name(), Answers: bopts.N + bopts.Warmup}
	if !check {
		return res, sc, nil
	}
	if err := serverCheck(ctx, sc, model, checkImage); err != nil {
		return benchlat.Result{}, nil, err
	}
	return res, sc, nil
}

// serverCheck sends one image to the server and runs the same model on it
// in process: both replies must hold the same detections.
func serverCheck(ctx context.Context, sc *ServerCheck, model, image string) error {
	data, err := os.ReadFile(image)
	if err != nil {
		return err
	}
	sc.Image = image
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sc.URL+"/v1/detect", bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "image/jpeg")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("server %s: %w", sc.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	sc.Status = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server %s/v1/detect answered %d: %s", sc.URL, resp.StatusCode, bytes.TrimSpace(body))
	}
	var reply serve.DetectResponse
	if err := json.Unmarshal(body, &reply); err != nil {
		return fmt.Errorf("server %s/v1/detect reply: %w", sc.URL, err)
	}
	sc.Answers++
	sc.Detections = len(reply.Detections)
	det, err := infer.Open(model, infer.Options{})
	if err != nil {
		return err
	}
	defer det.Close()
	// The same pipeline the server runs (decode, preprocessing, session).
	local, err := det.DetectEncoded(ctx, data, infer.Params{})
	if err != nil {
		return err
	}
	sc.InProcess = len(local.Detections)
	sc.Agree = sc.InProcess == sc.Detections
	for i := 0; sc.Agree && i < sc.Detections; i++ {
		a, b := reply.Detections[i], local.Detections[i]
		sc.Agree = a.CategoryID == b.Class && abs32(a.Score-b.Score) < 1e-4
	}
	return nil
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}

// startServer runs package serve's server for model on addr in this
// process; stop drains and closes it.
func (r *runner) startServer(ctx context.Context, model, addr string) (string, func(), error) {
	logger := slog.New(slog.NewTextHandler(indent(r.log), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := serve.New(serve.Config{ModelPath: model, Addr: addr, Log: logger, Version: "demo"})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		srv.Close()
		return "", nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	url := "http://" + ln.Addr().String()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintf(r.log, "      server %s: %v\n", url, err)
		}
	}
	return url, stop, nil
}

// serveUntilDone serves the INT8 model on ServeAddr until ctx is done.
func (r *runner) serveUntilDone(ctx context.Context) (string, error) {
	url, stop, err := r.startServer(ctx, r.paths.int8, r.opts.ServeAddr)
	if err != nil {
		return "", fmt.Errorf("demo: --serve: %w", err)
	}
	viewer := url + "/"
	fmt.Fprintf(r.log, "demo: serving %s at %s (viewer %s); stop with Ctrl-C\n", r.paths.int8, url, viewer)
	if r.opts.OnServe != nil {
		r.opts.OnServe(viewer)
	}
	<-ctx.Done()
	stop()
	fmt.Fprintf(r.log, "demo: server stopped\n")
	return viewer, nil
}

func (r *runner) latencySummary() string {
	l := r.res.Latency
	if l == nil || len(l.InProcess) < 2 || len(l.EndToEnd) < 2 {
		return ""
	}
	return fmt.Sprintf("p50 in-process fp32 %.2f ms, int8 %.2f ms; end-to-end fp32 %.2f ms, int8 %.2f ms; server check: %d detections, in-process %d",
		l.InProcess[0].P50MS, l.InProcess[1].P50MS, l.EndToEnd[0].P50MS, l.EndToEnd[1].P50MS, l.Server.Detections, l.Server.InProcess)
}

// newBar is a progress bar on w (nil when w is nil).
func newBar(w io.Writer, total int, unit, desc string) *progressbar.ProgressBar {
	if w == nil {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("      "+desc),
		progressbar.OptionSetItsString(unit),
		progressbar.OptionShowIts(),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(18),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func barAdd(b *progressbar.ProgressBar) {
	if b != nil {
		_ = b.Add(1)
	}
}

func barDone(b *progressbar.ProgressBar) {
	if b != nil {
		_ = b.Finish()
	}
}

func now() time.Time { return time.Now() }

func since(t time.Time) float64 { return time.Since(t).Seconds() }

// indentWriter prefixes every line written through it.
type indentWriter struct {
	w      io.Writer
	prefix string
	mid    bool // inside a line
}

func indent(w io.Writer) io.Writer {
	if w == io.Discard {
		return w
	}
	return &indentWriter{w: w, prefix: "      "}
}

func (iw *indentWriter) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, c := range string(p) {
		if !iw.mid {
			b.WriteString(iw.prefix)
			iw.mid = true
		}
		b.WriteRune(c)
		if c == '\n' {
			iw.mid = false
		}
	}
	if _, err := io.WriteString(iw.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
