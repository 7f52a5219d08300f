package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Default output folders.
const (
	DefaultOut      = "runs/demo"
	DefaultQuickOut = "runs/demo-quick"
	// DefaultServeAddr is where Options.Serve leaves the server listening.
	DefaultServeAddr = "127.0.0.1:8080"
)

// Files written at the top of the output folder.
const (
	ReportFile     = "REPORT.md"
	ReportHTMLFile = "REPORT.html"
	ResultsFile    = "results.json"
)

// Options configure Run.
type Options struct {
	// Out is the output folder (default DefaultOut, or DefaultQuickOut
	// with Quick).
	Out string
	// Quick runs QuickPlan instead of FullPlan.
	Quick bool
	// Plan, when set, replaces the plan Quick chooses (tests, experiments).
	Plan *Plan
	// Force redoes every stage even when its outputs are valid.
	Force bool
	// Serve leaves a server with the INT8 model running on ServeAddr
	// (default DefaultServeAddr) after the report is written, until ctx is
	// done; OnServe is told its viewer URL.
	Serve     bool
	ServeAddr string
	OnServe   func(url string)
	// Workers is the number of data-loading goroutines (0: the loader's
	// default).
	Workers int
	// Progress receives progress bars (nil: none); Log receives the stage
	// lines (nil: none).
	Progress io.Writer
	Log      io.Writer

	// stopAfter stops a training stage (by id) after so many steps, as an
	// interruption would; tests use it to check resuming.
	stopAfter map[string]int
}

// Results is everything the run measured: the report's data, also saved as
// results.json.
type Results struct {
	Plan     Plan           `json:"plan"`
	Synth    *SynthResult   `json:"synth,omitempty"`
	Teacher  *TrainResult   `json:"teacher,omitempty"`
	Baseline *TrainResult   `json:"baseline,omitempty"`
	GID      *TrainResult   `json:"gid,omitempty"`
	Eval     *EvalResult    `json:"eval,omitempty"`
	Export   *ExportResult  `json:"export,omitempty"`
	Latency  *LatencyResult `json:"latency,omitempty"`
	Stages   []StageSummary `json:"stages"`
}

// StageSummary says how a stage went in this invocation.
type StageSummary struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// Skipped is set when valid outputs of an earlier run were reused;
	// Seconds is then the time that earlier run took.
	Skipped bool    `json:"skipped"`
	Resumed bool    `json:"resumed,omitempty"`
	Seconds float64 `json:"seconds"`
	// Commands reproduce the stage by hand.
	Commands []string `json:"commands"`
}

// Result is what Run returns.
type Result struct {
	Out        string
	Report     string // path of REPORT.md
	HTML       string // path of REPORT.html
	Results    *Results
	Elapsed    time.Duration // wall time of this invocation
	RanStages  int           // stages run (not skipped) in this invocation
	ServingURL string        // with Options.Serve, the viewer URL while it ran
}

// stage is one step of the pipeline.
type stage struct {
	id, title string
	// inputs are the ids of the stages whose outputs this one reads.
	inputs []string
	// settings returns what, besides the inputs, determines the outputs.
	settings func() any
	// result points at the Results field the stage fills; a skipped stage
	// restores it from the manifest.
	result any
	// run does the work and returns the outputs to record (paths inside
	// the output folder); resumed reports that it continued earlier work.
	run func(ctx context.Context, st *stageRun) (outputs []string, err error)
	// commands are the CLI commands that redo the stage by hand.
	commands func() []string
	// summary is one line about the result, printed after the stage.
	summary func() string
}

// stageRun is what a stage's run function gets about its invocation.
type stageRun struct {
	key     string
	force   bool
	resumed bool
}

// runner carries one invocation's state.
type runner struct {
	opts     Options
	plan     Plan
	out      string
	manifest *Manifest
	res      *Results
	digests  map[string][]FileDigest
	log      io.Writer
	progress io.Writer
	paths    paths
}

// Run executes the demo (see the package comment) and returns where the
// report is. Cancelling ctx interrupts the current stage; training stages
// save their position first, and the next Run continues from it.
func Run(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	plan, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	if opts.ServeAddr == "" {
		opts.ServeAddr = DefaultServeAddr
	}
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, fmt.Errorf("demo: output folder: %w", err)
	}
	unlock, err := lockDir(opts.Out)
	if err != nil {
		return nil, err
	}
	defer unlock()
	r := &runner{
		opts: opts, plan: plan, out: opts.Out,
		res:      &Results{Plan: plan},
		digests:  map[string][]FileDigest{},
		log:      orDiscard(opts.Log),
		progress: opts.Progress,
		paths:    newPaths(opts.Out),
	}
	var note string
	r.manifest, note = readManifest(r.out)
	if note != "" {
		fmt.Fprintf(r.log, "demo: %s\n", note)
	}
	stages := r.stages()
	fmt.Fprintf(r.log, "gidedge demo (%s plan): %d stages into %s\n", plan.Name, len(stages), r.out)
	ran := 0
	for i, s := range stages {
		did, err := r.runStage(ctx, i+1, len(stages), s)
		if err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(r.log, "demo: interrupted in stage %d/%d (%s); run the same command again to continue\n", i+1, len(stages), s.id)
			}
			return nil, err
		}
		if did {
			ran++
		}
	}
	res := &Result{
		Out: r.out, Report: r.paths.report, HTML: r.paths.html, Results: r.res,
		Elapsed: time.Since(start), RanStages: ran,
	}
	fmt.Fprintf(r.log, "demo: done in %s (%d of %d stages run, the rest reused): %s\n",
		res.Elapsed.Round(time.Second), ran, len(stages), r.paths.report)
	if opts.Serve {
		url, err := r.serveUntilDone(ctx)
		res.ServingURL = url
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// Commands lists, stage by stage, the commands that redo the demo by hand
// for these options: what the report's "Reproduce by hand" section shows.
func Commands(opts Options) ([]StageSummary, error) {
	plan, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	r := &runner{opts: opts, plan: plan, out: opts.Out, res: &Results{Plan: plan}, paths: newPaths(opts.Out)}
	var out []StageSummary
	for _, s := range r.stages() {
		out = append(out, StageSummary{ID: s.id, Title: s.title, Commands: s.commands()})
	}
	return out, nil
}

// resolve picks the plan the options ask for (Plan, else QuickPlan with
// Quick, else FullPlan), validates it, and fills in the default output
// folder for that plan.
func (opts *Options) resolve() (Plan, error) {
	plan := FullPlan()
	if opts.Quick {
		plan = QuickPlan()
	}
	if opts.Plan != nil {
		plan = *opts.Plan
	}
	if err := plan.validate(); err != nil {
		return Plan{}, err
	}
	if opts.Out == "" {
		opts.Out = DefaultOut
		if opts.Quick {
			opts.Out = DefaultQuickOut
		}
	}
	return plan, nil
}

// runStage validates, skips or runs one stage and records it.
func (r *runner) runStage(ctx context.Context, n, total int, s *stage) (ran bool, err error) {
	var inputs []FileDigest
	for _, id := range s.inputs {
		inputs = append(inputs, r.digests[id]...)
	}
	key, err := stageKey(s.id, s.settings(), inputs)
	if err != nil {
		return false, err
	}
	rec := r.manifest.Stages[s.id]
	header := fmt.Sprintf("[%d/%d] %s", n, total, s.title)
	if !r.opts.Force {
		if ok, why := rec.valid(r.out, key); ok {
			if err := json.Unmarshal(rec.Result, s.result); err != nil {
				return false, fmt.Errorf("demo: stage %s: manifest result: %w", s.id, err)
			}
			r.digests[s.id] = rec.Outputs
			r.summarise(s, true, false, rec.Seconds)
			fmt.Fprintf(r.log, "%s: skipped, outputs valid (from %s, took %s)\n", header, rec.Finished.Local().Format("2006-01-02 15:04"), seconds(rec.Seconds))
			if s.summary != nil {
				fmt.Fprintf(r.log, "      %s\n", s.summary())
			}
			return false, nil
		} else if rec != nil {
			fmt.Fprintf(r.log, "%s: redoing (%s)\n", header, why)
		} else {
			fmt.Fprintf(r.log, "%s\n", header)
		}
	} else {
		fmt.Fprintf(r.log, "%s: redoing (--force)\n", header)
	}
	// The record goes before the work starts: a stage that stops half way
	// must not look finished to the next run.
	if rec != nil {
		delete(r.manifest.Stages, s.id)
		if err := r.manifest.write(r.out); err != nil {
			return false, err
		}
	}
	start := time.Now()
	st := &stageRun{key: key, force: r.opts.Force}
	outputs, err := s.run(ctx, st)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return false, fmt.Errorf("demo: stage %s interrupted: %w", s.id, err)
		}
		return false, fmt.Errorf("demo: stage %s: %w", s.id, err)
	}
	elapsed := time.Since(start).Seconds()
	result, err := json.Marshal(s.result)
	if err != nil {
		return false, fmt.Errorf("demo: stage %s: result: %w", s.id, err)
	}
	rec = &StageRecord{Key: key, Result: result, Seconds: elapsed, Finished: time.Now().UTC()}
	for _, p := range outputs {
		rel, err := relPath(r.out, p)
		if err != nil {
			return false, err
		}
		d, err := digest(r.out, rel)
		if err != nil {
			return false, fmt.Errorf("demo: stage %s: output %s: %w", s.id, rel, err)
		}
		rec.Outputs = append(rec.Outputs, d)
	}
	r.manifest.Stages[s.id] = rec
	if err := r.manifest.write(r.out); err != nil {
		return false, err
	}
	r.digests[s.id] = rec.Outputs
	r.summarise(s, false, st.resumed, elapsed)
	if s.summary != nil {
		fmt.Fprintf(r.log, "      %s\n", s.summary())
	}
	fmt.Fprintf(r.log, "      done in %s\n", seconds(elapsed))
	return true, nil
}

func (r *runner) summarise(s *stage, skipped, resumed bool, secs float64) {
	var cmds []string
	if s.commands != nil {
		cmds = s.commands()
	}
	r.res.Stages = append(r.res.Stages, StageSummary{ID: s.id, Title: s.title, Skipped: skipped, Resumed: resumed, Seconds: secs, Commands: cmds})
}

func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second))
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// paths are the files and folders of a demo folder.
type paths struct {
	synth, configs, teacherCfg, studentCfg string
	teacher, baseline, gid                 string
	eval, export, fp32, int8, calib        string
	latency, figures, report, html, result string
}

func newPaths(out string) paths {
	j := func(p ...string) string { return filepath.Join(append([]string{out}, p...)...) }
	return paths{
		synth: j("synth"), configs: j("configs"),
		teacherCfg: j("configs", "teacher.json"), studentCfg: j("configs", "student.json"),
		teacher: j("teacher"), baseline: j("baseline"), gid: j("gid"),
		eval: j("eval"), export: j("export"),
		fp32: j("export", "gid_student.onnx"), int8: j("export", "gid_student_int8.onnx"),
		calib:   j("export", "calib"),
		latency: j("latency"), figures: j("figures"),
		report: j(ReportFile), html: j(ReportHTMLFile), result: j(ResultsFile),
	}
}
