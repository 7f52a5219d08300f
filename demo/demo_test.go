package demo

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/ort"
)

func needORT(t *testing.T) {
	t.Helper()
	if err := ort.Init(); err != nil {
		t.Fatalf("ONNX Runtime is needed (scripts/setup.sh installs it): %v", err)
	}
}

// TestQuickDemo runs the quick demo end to end the way a user would meet
// it: interrupted during the teacher's training, run again (it must resume
// and finish), run a third time (everything reused), then once more after
// an output was changed (only what depends on it is redone).
func TestQuickDemo(t *testing.T) {
	needORT(t)
	out := t.TempDir()
	ctx := context.Background()
	var log strings.Builder
	opts := Options{Out: out, Quick: true, Log: &log, stopAfter: map[string]int{StageTeacher: 3}}

	_, err := Run(ctx, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("run stopped after 3 teacher steps: err %v, want one wrapping context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(out, "teacher", "last.safetensors")); err != nil {
		t.Fatalf("interrupted teacher left no checkpoint to resume: %v", err)
	}
	if exists(filepath.Join(out, ReportFile)) {
		t.Fatal("an interrupted run wrote a report")
	}

	// A second run in the same folder while one holds it is refused.
	unlock, err := lockDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(ctx, Options{Out: out, Quick: true}); !errors.Is(err, ErrBusy) {
		t.Errorf("run in a folder another run holds: err %v, want ErrBusy", err)
	}
	unlock()

	opts.stopAfter = nil
	res, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, log.String())
	}
	st := stagesByID(res.Results)
	if !st[StageSynth].Skipped || !st[StageTeacher].Resumed || st[StageTeacher].Skipped {
		t.Fatalf("second run: synth skipped %v, teacher resumed %v skipped %v; want true, true, false",
			st[StageSynth].Skipped, st[StageTeacher].Resumed, st[StageTeacher].Skipped)
	}
	checkReport(t, res)

	first, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	res, err = Run(ctx, opts)
	if err != nil {
		t.Fatalf("third run: %v", err)
	}
	if res.RanStages != 0 {
		t.Fatalf("third run ran %d stages, want 0 (all outputs valid)", res.RanStages)
	}
	for _, s := range res.Results.Stages {
		if !s.Skipped {
			t.Errorf("third run: stage %s not skipped", s.ID)
		}
	}
	again, _ := os.ReadFile(res.Report)
	if string(again) != string(first) {
		t.Error("a run that reused every stage rewrote the report")
	}

	// A changed output is redone; evaluation is deterministic, so the
	// redone file is identical and nothing downstream needs redoing.
	results := filepath.Join(out, "eval", "gid.json")
	if err := os.WriteFile(results, []byte("[]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = Run(ctx, opts)
	if err != nil {
		t.Fatalf("fourth run: %v", err)
	}
	st = stagesByID(res.Results)
	for id, wantRun := range map[string]bool{StageSynth: false, StageTeacher: false, StageGID: false, StageEvaluate: true, StageExport: false, StageLatency: false, StageReport: false} {
		if st[id].Skipped == wantRun {
			t.Errorf("after changing eval/gid.json: stage %s skipped %v, want %v", id, st[id].Skipped, !wantRun)
		}
	}
	if data, _ := os.ReadFile(results); string(data) == "[]\n" {
		t.Error("the evaluate stage did not rewrite eval/gid.json")
	}

	// --serve: everything is reused, then the INT8 model stays served
	// until the context ends.
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts.Serve, opts.ServeAddr = true, "127.0.0.1:0"
	var viewerStatus int
	opts.OnServe = func(url string) {
		defer cancel()
		resp, err := http.Get(url)
		if err != nil {
			t.Errorf("viewer %s: %v", url, err)
			return
		}
		resp.Body.Close()
		viewerStatus = resp.StatusCode
	}
	res, err = Run(sctx, opts)
	if err != nil {
		t.Fatalf("--serve run: %v", err)
	}
	if viewerStatus != http.StatusOK || !strings.HasPrefix(res.ServingURL, "http://127.0.0.1:") {
		t.Errorf("--serve: viewer %q answered %d, want 200 from 127.0.0.1", res.ServingURL, viewerStatus)
	}
}

func stagesByID(r *Results) map[string]StageSummary {
	m := map[string]StageSummary{}
	for _, s := range r.Stages {
		m[s.ID] = s
	}
	return m
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// checkReport checks the report's sections, figures and numbers.
func checkReport(t *testing.T, res *Result) {
	t.Helper()
	md, err := os.ReadFile(res.Report)
	if err != nil {
		t.Fatal(err)
	}
	html, err := os.ReadFile(res.HTML)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Sections {
		if !strings.Contains(string(md), "\n## "+s+"\n") {
			t.Errorf("REPORT.md has no section %q", s)
		}
		if !strings.Contains(string(html), "<h2>"+s+"</h2>") {
			t.Errorf("REPORT.html has no section %q", s)
		}
	}
	for _, fig := range []string{figLoss, figValAP, figPR, figDetections} {
		if !strings.Contains(string(md), "]("+fig+")") {
			t.Errorf("REPORT.md does not show %s", fig)
		}
		data, err := os.ReadFile(filepath.Join(res.Out, fig))
		if err != nil || len(data) < 8 || string(data[1:4]) != "PNG" {
			t.Errorf("figure %s is not a PNG (err %v)", fig, err)
		}
	}
	for _, cmd := range []string{"gidedge data synth", "gidedge train", "gidedge distill", "gidedge eval", "gidedge export", "gidedge quantize", "gidedge serve", "gidedge bench latency"} {
		if !strings.Contains(string(md), cmd) {
			t.Errorf("REPORT.md does not say how to run %q by hand", cmd)
		}
	}
	if !strings.Contains(string(md), "GID beat the baseline") && !strings.Contains(string(md), "GID did not beat the baseline") {
		t.Error("REPORT.md does not say whether GID beat the baseline")
	}

	r := res.Results
	ex := r.Export
	for _, e := range []ModelEval{r.Eval.Teacher, r.Eval.Baseline, r.Eval.GID, ex.FP32Eval, ex.INT8Eval} {
		for name, v := range map[string]float64{"AP": e.AP, "AP50": e.AP50, "AP75": e.AP75} {
			if !(v >= 0 && v <= 1) {
				t.Errorf("%s %s = %v, want a value in [0, 1]", e.Role, name, v)
			}
		}
		if len(e.PR50) != 101 {
			t.Errorf("%s precision-recall curve has %d points, want 101", e.Role, len(e.PR50))
		}
	}
	if !(ex.INT8Bytes > 0 && ex.INT8Bytes < ex.FP32Bytes) {
		t.Errorf("int8 model %d bytes, fp32 %d: want int8 smaller", ex.INT8Bytes, ex.FP32Bytes)
	}
	if !(ex.ParityWorst <= ex.ParityTol) {
		t.Errorf("export parity %v above tolerance %v", ex.ParityWorst, ex.ParityTol)
	}
	lat := r.Latency
	if len(lat.InProcess) != 2 || len(lat.EndToEnd) != 2 {
		t.Fatalf("latency: %d in-process and %d end-to-end results, want 2 and 2", len(lat.InProcess), len(lat.EndToEnd))
	}
	for _, x := range append(lat.InProcess, lat.EndToEnd...) {
		if !(x.P50MS > 0) || x.N != r.Plan.LatencyRuns {
			t.Errorf("latency %s %s: p50 %v ms over %d runs, want > 0 over %d", x.Model, x.Mode, x.P50MS, x.N, r.Plan.LatencyRuns)
		}
	}
	if sv := lat.Server; sv.Status != 200 || !sv.Agree || !strings.HasPrefix(sv.URL, "http://127.0.0.1:") {
		t.Errorf("server check %+v: want HTTP 200 from 127.0.0.1 agreeing with the in-process run", sv)
	}
	if lat.Answers < 2*r.Plan.LatencyRuns {
		t.Errorf("servers answered %d requests, want at least %d", lat.Answers, 2*r.Plan.LatencyRuns)
	}
}

// TestFullPlanSpread: the spread over seeds that the report quotes was
// measured on the plan FullPlan returns, and only that plan quotes it.
func TestFullPlanSpread(t *testing.T) {
	if got := planDigest(FullPlan()); got != FullPlanSpread.PlanSHA256 {
		t.Fatalf("FullPlan's digest is %s but FullPlanSpread was measured on %s: run scripts/bench_demo.sh and update FullPlanSpread, docs/demo.md and benchmarks/RESULTS.md", got, FullPlanSpread.PlanSHA256)
	}
	if _, ok := FullPlan().spread(); !ok {
		t.Fatal("the full plan does not quote its spread")
	}
	if _, ok := QuickPlan().spread(); ok {
		t.Fatal("the quick plan quotes the full plan's spread")
	}
	sp := FullPlanSpread
	if sp.Seeds < 3 || sp.TeacherSeeds < 3 || sp.Measured == "" {
		t.Fatalf("spread over %d student and %d teacher seeds, measured %q: want at least 3 of each and a date", sp.Seeds, sp.TeacherSeeds, sp.Measured)
	}
}
