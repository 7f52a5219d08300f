package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gidedge/gidedge/benchlat"
	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/dataset/synth"
	"github.com/gidedge/gidedge/internal/atomicfile"
	"github.com/gidedge/gidedge/internal/buildinfo"
	"github.com/gidedge/gidedge/internal/human"
)

// Sections are the second-level headings every report has, in order.
var Sections = []string{
	"Summary",
	"Data",
	"Training",
	"Accuracy on the test split",
	"Export and INT8 quantization",
	"Latency",
	"Detections",
	"Reproduce by hand",
	"This run",
}

// Figure files, relative to the output folder.
const (
	figLoss       = "figures/loss.png"
	figValAP      = "figures/val_map.png"
	figPR         = "figures/pr.png"
	figDetections = "figures/detections.png"
)

func (r *runner) runReport(ctx context.Context, st *stageRun) ([]string, error) {
	figDir := filepath.Join(r.out, "figures")
	if err := os.MkdirAll(figDir, 0o755); err != nil {
		return nil, err
	}
	res := r.res
	runs := []namedRun{{"teacher", r.paths.teacher}, {"baseline student", r.paths.baseline}, {"GID student", r.paths.gid}}
	fmt.Fprintf(r.log, "      plotting training curves, precision-recall and detections\n")
	if err := plotTraining(filepath.Join(r.out, figLoss), filepath.Join(r.out, figValAP), runs); err != nil {
		return nil, err
	}
	evals, names := r.allEvals()
	if err := plotPR(filepath.Join(r.out, figPR), evals, names); err != nil {
		return nil, err
	}
	test, err := dataset.Load(r.paths.synth, "test")
	if err != nil {
		return nil, err
	}
	cols := []panelColumn{{title: "ground truth"}}
	for i, e := range evals {
		if i == 3 { // the fp32 ONNX column would repeat the engine's GID column
			continue
		}
		d, err := detectionsByImage(e.Results)
		if err != nil {
			return nil, err
		}
		cols = append(cols, panelColumn{title: names[i], dets: d})
	}
	if err := drawDetections(filepath.Join(r.out, figDetections), test, pickImages(test, r.plan.DrawImages), cols); err != nil {
		return nil, err
	}
	blocks := r.reportBlocks()
	if err := atomicfile.WriteFile(r.paths.report, []byte(renderMarkdown(blocks))); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(r.paths.html, []byte(renderHTML("gidedge demo report", blocks))); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(r.paths.result, append(data, '\n')); err != nil {
		return nil, err
	}
	return []string{r.paths.report, r.paths.html, r.paths.result, figDir}, nil
}

// allEvals lists every test evaluation in report order with display names.
func (r *runner) allEvals() ([]ModelEval, []string) {
	e, x := r.res.Eval, r.res.Export
	return []ModelEval{e.Teacher, e.Baseline, e.GID, x.FP32Eval, x.INT8Eval},
		[]string{"teacher", "baseline student", "GID student", "GID student, ONNX fp32", "GID student, ONNX INT8"}
}

func ap(v float64) string {
	if v < 0 || math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", v)
}

func ms(v float64) string { return fmt.Sprintf("%.2f ms", v) }

func millions(n int) string { return fmt.Sprintf("%.2f M", float64(n)/1e6) }

// reportBlocks builds the whole report from the results: a title, then
// one part per entry of Sections, in that order.
func (r *runner) reportBlocks() []block {
	return slices.Concat(
		r.introBlocks(),
		r.summaryBlocks(),
		r.dataBlocks(),
		r.trainingBlocks(),
		r.accuracyBlocks(),
		r.exportBlocks(),
		r.latencyBlocks(),
		r.detectionsBlocks(),
		r.reproduceBlocks(),
		r.thisRunBlocks(),
	)
}

// introBlocks are the title and where the numbers come from.
func (r *runner) introBlocks() []block {
	host, p := r.res.Latency.Host, r.plan
	bl := []block{
		heading{1, "gidedge demo report"},
		para{fmt.Sprintf("Generated %s by gidedge %s on %s (%d CPUs, %s/%s), %s plan. Every number below was computed by this run; [results.json](results.json) holds them all and [manifest.json](manifest.json) the hash of every file they came from.",
			time.Now().Format("2006-01-02 15:04 MST"), buildinfo.Version, orUnknown(host.CPUModel), host.CPUs, host.OS, host.Arch, p.Name)},
	}
	if p.Name == "quick" {
		bl = append(bl, para{"**This is the `--quick` smoke test**: tiny images and a couple of epochs check that every stage works; its accuracy figures say nothing about the methods. Run `gidedge demo` for the real comparison."})
	}
	return bl
}

// summaryBlocks compare the three models and the two exported files in one
// table and say in words what distillation and INT8 did.
func (r *runner) summaryBlocks() []block {
	res, p := r.res, r.plan
	t, b, g := res.Teacher, res.Baseline, res.GID
	ev, ex, lat := res.Eval, res.Export, res.Latency
	inp := func(i int) benchlat.Result { return lat.InProcess[i] }
	e2e := func(i int) benchlat.Result { return lat.EndToEnd[i] }
	return []block{
		heading{2, "Summary"},
		table{
			header: []string{"model", "params", "GFLOPs", "test mAP", "AP50", "file", "p50 in-process", "p50 end-to-end"},
			right:  []bool{false, true, true, true, true, true, true, true},
			rows: [][]string{
				{fmt.Sprintf("teacher (`%s`, %s)", t.Config, t.Backbone), millions(t.Params), fmt.Sprintf("%.3f", t.GFLOPs), ap(ev.Teacher.AP), ap(ev.Teacher.AP50), "—", "—", "—"},
				{fmt.Sprintf("baseline student (`%s`, %s)", b.Config, b.Backbone), millions(b.Params), fmt.Sprintf("%.3f", b.GFLOPs), ap(ev.Baseline.AP), ap(ev.Baseline.AP50), "—", "—", "—"},
				{"GID student (same student, distilled)", millions(g.Params), fmt.Sprintf("%.3f", g.GFLOPs), "**" + ap(ev.GID.AP) + "**", ap(ev.GID.AP50), "—", "—", "—"},
				{"GID student, ONNX fp32", millions(g.Params), fmt.Sprintf("%.3f", g.GFLOPs), ap(ex.FP32Eval.AP), ap(ex.FP32Eval.AP50), human.Bytes(ex.FP32Bytes), ms(inp(0).P50MS), ms(e2e(0).P50MS)},
				{"GID student, ONNX INT8", millions(g.Params), fmt.Sprintf("%.3f", g.GFLOPs), ap(ex.INT8Eval.AP), ap(ex.INT8Eval.AP50), human.Bytes(ex.INT8Bytes), ms(inp(1).P50MS), ms(e2e(1).P50MS)},
			},
		},
		para{fmt.Sprintf("mAP is COCO mAP@[.5:.95] on the %d test images (%d objects); GFLOPs per %d×%d image; the first three rows run in gidedge's training engine, the last two are the exported files; latency is one image at a time on this machine's CPU with ONNX Runtime %s, decode and post-processing included, end-to-end through `gidedge serve` on 127.0.0.1.",
			ev.Images, ev.Objects, p.ImgSize, p.ImgSize, orUnknown(ex.ORTVersion))},
		bullets{r.verdicts()},
	}
}

// dataBlocks describe the synthetic set and, for the demo preset, say
// plainly that it is easier than the benchmark set and why.
func (r *runner) dataBlocks() []block {
	s, p := r.res.Synth, r.plan
	var classCounts []string
	for _, c := range s.Classes {
		classCounts = append(classCounts, fmt.Sprintf("%s %d", c, s.PerClass[c]))
	}
	preset := synth.Preset(s.Preset)
	if preset == "" {
		preset = synth.PresetBenchmark
	}
	bl := []block{
		heading{2, "Data"},
		para{fmt.Sprintf("The synthetic set of `gidedge data synth`, preset `%s` (seed %d): %d images of %d×%d pixels, split train %d / val %d / test %d, with %d objects in %d classes (%s). It holds %s.",
			preset, p.Seed, s.Images, s.Size, s.Size, s.Train, s.Val, s.Test, s.Objects, len(s.Classes), strings.Join(classCounts, ", "), preset.Description())},
	}
	if preset == synth.PresetDemo {
		bl = append(bl, para{"**This set is easier than the benchmark set, on purpose.** The benchmark preset (the default of `gidedge data synth`) holds " +
			synth.PresetBenchmark.Description() + ". That is the set `benchmarks/RESULTS.md` measures distillation on, and there the same teacher needs a 20-epoch schedule to reach about 0.12 test mAP: a demo of a few minutes on two CPU cores would show numbers that look broken. " +
			"The demo preset keeps the point of the comparison (a small student trained briefly still lags the teacher, and GID narrows the gap) on a set a detector can learn within the demo's budget. Its mAP is not comparable with the benchmark figures; see `docs/distill.md` for those."})
	}
	return bl
}

// trainingBlocks give the three schedules, the recipe and the curves.
func (r *runner) trainingBlocks() []block {
	res, p := r.res, r.plan
	t, b, g := res.Teacher, res.Baseline, res.GID
	trow := func(name string, x *TrainResult) []string {
		return []string{name, "`" + x.Config + "`", fmt.Sprintf("%d × %d", x.Epochs, x.Steps/max(1, x.Epochs)), fmt.Sprint(x.Batch), fmt.Sprintf("%d px", x.ImgSize),
			seconds(x.TrainSeconds), fmt.Sprintf("%.1f", x.ImagesPerSec), fmt.Sprintf("%s (epoch %d)", ap(x.BestValAP), x.BestEpoch)}
	}
	lr := fmt.Sprintf("peak learning rate %g", p.TeacherLR)
	if p.TeacherLR != p.StudentLR {
		lr = fmt.Sprintf("peak learning rate %g for the teacher, %g for the students", p.TeacherLR, p.StudentLR)
	}
	bl := []block{
		heading{2, "Training"},
		table{
			header: []string{"model", "config", "epochs × steps", "batch", "input", "train time", "images/s", "best val mAP"},
			right:  []bool{false, false, true, true, true, true, true, true},
			rows:   [][]string{trow("teacher", t), trow("baseline student", b), trow("GID student", g)},
		},
		para{fmt.Sprintf("All three use %s (%s, %d warm-up steps, cosine decay)%s. The two students share the config, seed, data order and schedule: distillation is the only difference. Each run evaluates on the validation split after every epoch; the checkpoint with the best validation mAP is the one tested and exported.",
			map[string]string{"adamw": "AdamW", "sgd": "SGD with momentum"}[p.Optimizer], lr, p.WarmupSteps, map[bool]string{true: " with flip, zoom and colour augmentation", false: ""}[p.Augment])},
	}
	if g.Method != "" {
		bl = append(bl, para{fmt.Sprintf("Distillation: %s; %.1f general instances per image on average.", g.Method, g.GIsPerImage)})
	}
	return append(bl,
		figure{figLoss, "training loss"}, figure{figValAP, "validation mAP per epoch"},
		para{"The detection loss is the focal classification plus box regression loss, without the GID student's distillation terms (drawn apart, as weighted in its loss), so the three runs are on one scale. Each run folder also has its own `metrics.png` and `metrics.jsonl`."})
}

// accuracyBlocks are the full COCO metrics of every model, per class too.
func (r *runner) accuracyBlocks() []block {
	ev, ex := r.res.Eval, r.res.Export
	evals, names := r.allEvals()
	acc := table{
		header: []string{"model", "mAP", "AP50", "AP75", "AP small", "AP medium", "AP large", "AR100", "detections"},
		right:  []bool{false, true, true, true, true, true, true, true, true},
	}
	for i, e := range evals {
		acc.rows = append(acc.rows, []string{names[i], ap(e.AP), ap(e.AP50), ap(e.AP75), ap(e.APSmall), ap(e.APMedium), ap(e.APLarge), ap(e.AR100), fmt.Sprint(e.Detections)})
	}
	pc := table{header: []string{"class", "teacher", "baseline", "GID", "GID INT8"}, right: []bool{false, true, true, true, true}}
	for i, c := range ev.Teacher.PerClass {
		row := []string{c.Name}
		for _, e := range []ModelEval{ev.Teacher, ev.Baseline, ev.GID, ex.INT8Eval} {
			if i < len(e.PerClass) {
				row = append(row, ap(e.PerClass[i].AP))
			} else {
				row = append(row, "n/a")
			}
		}
		pc.rows = append(pc.rows, row)
	}
	return []block{
		heading{2, "Accuracy on the test split"},
		acc,
		para{"Per-class mAP@[.5:.95]:"}, pc,
		figure{figPR, "precision-recall curves"},
		para{fmt.Sprintf("The engine rows run the checkpoints in gidedge's own engine (`gidedge eval --checkpoint`); the ONNX rows run the exported files through ONNX Runtime exactly as the server does (decode, letterbox, session, NMS). Results files: %s.",
			joinCode(evals))},
	}
}

// exportBlocks describe the ONNX file, its INT8 version and what each
// costs in accuracy.
func (r *runner) exportBlocks() []block {
	ev, ex := r.res.Eval, r.res.Export
	items := []string{
		fmt.Sprintf("ONNX: `%s`, %s, opset %d, %d nodes, %d batch norms folded into convolutions. Parity with the engine on a seeded batch: worst relative difference %.2e (output `%s`), tolerance %.0e.",
			filepath.ToSlash(ex.FP32Path), human.Bytes(ex.FP32Bytes), ex.Opset, ex.Nodes, ex.FoldedBN, ex.ParityWorst, ex.ParityOutput, ex.ParityTol),
		fmt.Sprintf("INT8: `%s`, %s (%.2f× smaller), QDQ with %s %s activations and %s int8 weights, calibrated on %d training images (never a test image).",
			filepath.ToSlash(ex.INT8Path), human.Bytes(ex.INT8Bytes), float64(ex.FP32Bytes)/math.Max(1, float64(ex.INT8Bytes)), ex.CalibMethod, ex.Activations, map[bool]string{true: "per-channel", false: "per-tensor"}[ex.PerChannel], ex.CalibImages),
		"Quantized ops: " + opList(ex.QuantizedOps) + ".",
	}
	if len(ex.FloatOps) > 0 {
		items = append(items, "Left in float: "+opList(ex.FloatOps)+".")
	}
	if len(ex.ORTOps) > 0 {
		items = append(items, "What ONNX Runtime runs after its QDQ fusions: "+opList(ex.ORTOps)+".")
	}
	if ex.CosineMin > 0 {
		items = append(items, fmt.Sprintf("Smallest cosine similarity between fp32 and INT8 outputs on calibration images: %.4f.", ex.CosineMin))
	}
	items = append(items, fmt.Sprintf("Test mAP: engine %s, ONNX fp32 %s, INT8 %s (INT8 − fp32: %+.4f).", ap(ev.GID.AP), ap(ex.FP32Eval.AP), ap(ex.INT8Eval.AP), ex.INT8Eval.AP-ex.FP32Eval.AP))
	for _, n := range ex.QuantizeNotes {
		items = append(items, "Note from quantize: "+n)
	}
	return []block{heading{2, "Export and INT8 quantization"}, bullets{items}}
}

// latencyBlocks time fp32 against INT8, in process and through the server,
// and report the server check.
func (r *runner) latencyBlocks() []block {
	lat, p := r.res.Latency, r.plan
	lt := table{
		header: []string{"model", "mode", "p50", "p90", "p99", "mean ± std", "images/s", "session p50", "RSS"},
		right:  []bool{false, false, true, true, true, true, true, true, true},
	}
	for _, x := range append(append([]benchlat.Result(nil), lat.InProcess...), lat.EndToEnd...) {
		rss := ""
		if x.RSSBytes > 0 {
			rss = human.Bytes(x.RSSBytes)
		}
		lt.rows = append(lt.rows, []string{"`" + x.Model + "`", x.Mode, ms(x.P50MS), ms(x.P90MS), ms(x.P99MS), fmt.Sprintf("%.2f ± %.2f ms", x.MeanMS, x.StdMS), fmt.Sprintf("%.1f", x.Throughput), ms(x.SessionP50MS), rss})
	}
	sv := lat.Server
	agree := "the same detections"
	if !sv.Agree {
		agree = "**different detections** (a bug worth reporting)"
	}
	return []block{
		heading{2, "Latency"},
		lt,
		para{fmt.Sprintf("%d timed requests after %d warm-up ones per row, cycling through the %d test images, one request in flight. In-process runs decode, preprocess, run the ONNX Runtime session and post-process in this process; end-to-end rows POST the JPEG to `/v1/detect` of a server the demo started on 127.0.0.1 and read the whole JSON reply (client and server share this machine's %d CPUs). RSS is the resident memory of the process running the model.",
			p.LatencyRuns, p.LatencyWarmup, lat.Images, lat.Host.CPUs)},
		para{fmt.Sprintf("Server check: `POST %s/v1/detect` with `%s` answered HTTP %d with %d detections; the INT8 model run in process found %d, %s. The servers answered %d requests in all.",
			sv.URL, filepath.ToSlash(sv.Image), sv.Status, sv.Detections, sv.InProcess, agree, lat.Answers)},
	}
}

// detectionsBlocks show test images with every model's detections.
func (r *runner) detectionsBlocks() []block {
	return []block{
		heading{2, "Detections"},
		figure{figDetections, "test images with detections"},
		para{fmt.Sprintf("Test images, one per row. Columns: the ground truth, then each model's detections with a score of at least %.1f (at most %d per image); the last column is the INT8 model the server runs.", drawScoreThreshold, maxDrawn)},
	}
}

// reproduceBlocks list the commands that redo each stage by hand.
func (r *runner) reproduceBlocks() []block {
	bl := []block{
		heading{2, "Reproduce by hand"},
		para{"From the folder the demo ran in (the repository root for `make demo`; `gidedge` is `bin/gidedge` after `make build`), these commands redo each stage with the same settings. The model configs in `configs/` are the named configs with this plan's input size and schedule written in."},
	}
	for i, st := range r.res.Stages {
		if len(st.Commands) == 0 {
			continue
		}
		bl = append(bl, para{fmt.Sprintf("%d. %s", i+1, st.Title)}, codeBlock{st.Commands})
	}
	return bl
}

// thisRunBlocks say which stages ran or were reused, and how long each took.
func (r *runner) thisRunBlocks() []block {
	rt := table{header: []string{"stage", "status", "time"}, right: []bool{false, false, true}}
	total := 0.0
	for i, st := range r.res.Stages {
		status := "ran"
		switch {
		case st.Skipped:
			status = "reused (outputs valid)"
		case st.Resumed:
			status = "resumed after an interruption (time since the resume)"
		}
		rt.rows = append(rt.rows, []string{fmt.Sprintf("%d. %s", i+1, st.ID), status, seconds(st.Seconds)})
		total += st.Seconds
	}
	rt.rows = append(rt.rows, []string{"report", "ran", "(this page)"})
	return []block{
		heading{2, "This run"},
		rt,
		para{fmt.Sprintf("Stage times add up to %s of wall time (a reused stage counts the time it took when it ran). Times depend on the machine and on whatever else it was running.", seconds(total))},
	}
}

// verdicts are the summary's sentences: what GID did on this run, how
// that compares with the plan's spread over seeds when it was measured,
// and what INT8 bought.
func (r *runner) verdicts() []string {
	res := r.res
	ev := res.Eval
	out := []string{gidVerdict(ev.Teacher, ev.Baseline, ev.GID, res.Baseline)}
	if sp, ok := r.plan.spread(); ok {
		f := func(v [2]float64) string { return fmt.Sprintf("%.3f ± %.3f", v[0], v[1]) }
		out = append(out, fmt.Sprintf("**Over seeds** (measured offline with `scripts/bench_demo.sh`, %s; not by this run): teacher %s (%d seeds), baseline student %s, GID student %s (%d seeds each); GID minus the baseline of the same seed %+.3f ± %.3f. This run is one draw from that spread.",
			sp.Measured, f(sp.Teacher), sp.TeacherSeeds, f(sp.Baseline), f(sp.GID), sp.Seeds, sp.Gain[0], sp.Gain[1]))
	}
	return append(out, quantVerdict(res.Export, res.Latency))
}

// gidVerdict says plainly whether distillation helped on this run.
func gidVerdict(t, b, g ModelEval, bt *TrainResult) string {
	d := g.AP - b.AP
	if d > 0 {
		s := fmt.Sprintf("**GID beat the baseline**: the distilled student reaches test mAP %.4f against %.4f for the same student trained alone (%+.4f, %+.0f%% relative).", g.AP, b.AP, d, 100*d/math.Max(b.AP, 1e-9))
		if gap := t.AP - b.AP; gap > 0 {
			s += fmt.Sprintf(" That closes %.0f%% of the gap to the teacher (%.4f).", 100*d/gap, t.AP)
		}
		return s
	}
	s := fmt.Sprintf("**GID did not beat the baseline on this run**: the distilled student reaches test mAP %.4f against %.4f for the same student trained alone (%+.4f), with identical schedules (%d epochs × %d steps), seed and data order.",
		g.AP, b.AP, d, bt.Epochs, bt.Steps/max(1, bt.Epochs))
	if t.AP <= b.AP {
		s += fmt.Sprintf(" The teacher itself is no better than the baseline student here (%.4f), so it had little to teach.", t.AP)
	} else {
		s += " This run shows no benefit from distillation at this schedule."
	}
	return s
}

// quantVerdict compares the INT8 file with the fp32 one.
func quantVerdict(ex *ExportResult, lat *LatencyResult) string {
	f, q := lat.InProcess[0], lat.InProcess[1]
	speed := f.P50MS / math.Max(q.P50MS, 1e-9)
	how := fmt.Sprintf("%.2f× faster", speed)
	if speed < 1 {
		how = fmt.Sprintf("%.2f× slower", 1/speed)
	}
	return fmt.Sprintf("**INT8** is %.2f× smaller than fp32 (%s against %s) and %s in process (p50 %.2f ms against %.2f ms); its test mAP is %s against %s (%+.4f).",
		float64(ex.FP32Bytes)/math.Max(1, float64(ex.INT8Bytes)), human.Bytes(ex.INT8Bytes), human.Bytes(ex.FP32Bytes), how, q.P50MS, f.P50MS,
		ap(ex.INT8Eval.AP), ap(ex.FP32Eval.AP), ex.INT8Eval.AP-ex.FP32Eval.AP)
}

func opList(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	return human.Counts(m, "%s ×%d")
}

func joinCode(evals []ModelEval) string {
	var parts []string
	for _, e := range evals {
		parts = append(parts, "`"+filepath.ToSlash(e.Results)+"`")
	}
	return strings.Join(parts, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
