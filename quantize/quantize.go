package quantize

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/human"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
	"github.com/gidedge/gidedge/ort"
)

// Defaults of Options.
const (
	DefaultMethod         = MinMax
	DefaultPercentile     = 99.99
	DefaultCalibImages    = 100
	DefaultEvalImages     = 8
	DefaultBenchRuns      = 100
	DefaultMaxFloatLayers = 8
)

// PreprocessOverride replaces single fields of the preprocessing read from
// the model (gidedge metadata or a known adapter); nil / empty / zero fields
// keep it.
type PreprocessOverride struct {
	Mean, Std     *[3]float32
	ChannelOrder  string
	Resize        string
	PadValue      *float32
	PixelScale    *float32
	Width, Height int
}

func (o PreprocessOverride) any() bool {
	return o.Mean != nil || o.Std != nil || o.ChannelOrder != "" || o.Resize != "" || o.PadValue != nil || o.PixelScale != nil || o.Width > 0 || o.Height > 0
}

// Options configure Run.
type Options struct {
	Model string // float ONNX model to quantize
	Out   string // where the QDQ model goes (atomically, only on success)
	// Calib is a folder of calibration images (searched recursively, so a
	// COCO or VOC dataset folder works). It may be empty when CalibCache
	// already holds the ranges.
	Calib       string
	CalibImages int // at most this many, evenly spaced (default 100)

	Method      Method
	Percentile  float64 // for Method Percentile (default 99.99)
	Activations Activations
	// PerTensor quantizes weights with one scale per tensor instead of one
	// per output channel (the default).
	PerTensor bool
	Exclude   []string // node names or op types kept in float
	// QuantizeTail also quantizes the ops after the last Conv/Gemm/MatMul
	// (score activations, reshapes, box decoding), which stay float by default.
	QuantizeTail bool
	CalibCache   string // JSON ranges: read when present, written after calibrating

	Preprocess PreprocessOverride

	// Labels is a VOC or COCO dataset folder; with it the report has mAP.
	Labels      string
	LabelsSplit string
	LabelImages int // at most this many labelled images (0 = all)

	// MaxAPDrop (AP points, needs Labels) or MinCosine (smallest output
	// cosine similarity) turns on the sensitive-layer fallback.
	MaxAPDrop      float64
	MinCosine      float64
	MaxFloatLayers int

	Report     bool // measure latency and ONNX Runtime's fused ops too
	EvalImages int  // calibration images used for cosine (default 8)
	BenchRuns  int  // timed runs per model for latency (default 100)
	Threads    int  // ONNX Runtime intra-op threads; 0 lets it choose

	Log io.Writer // progress lines; nil discards them
}

// ModelStats describe one model of the comparison.
type ModelStats struct {
	Path         string  `json:"path"`
	SizeBytes    int64   `json:"size_bytes"`
	LatencyMs    float64 `json:"latency_ms,omitempty"`
	LatencyP99Ms float64 `json:"latency_p99_ms,omitempty"`
	// CPUMs is the process CPU time per run (user + system).
	CPUMs float64  `json:"cpu_ms,omitempty"`
	AP    *float64 `json:"ap,omitempty"`
	AP50  *float64 `json:"ap50,omitempty"`
}

// Report is what Run did and measured.
type Report struct {
	Model       string           `json:"model"`
	Out         string           `json:"out"`
	Method      Method           `json:"method"`
	Percentile  float64          `json:"percentile,omitempty"`
	Activations Activations      `json:"activations"`
	PerChannel  bool             `json:"per_channel"`
	CalibImages int              `json:"calib_images"`
	CalibCache  string           `json:"calib_cache_used,omitempty"`
	Preprocess  infer.Preprocess `json:"preprocess"`
	Notes       []string         `json:"notes,omitempty"`

	// QuantizedOps counts quantized nodes by op type; FloatOps counts the
	// quantizable ones left in float and why.
	QuantizedOps map[string]int `json:"quantized_ops"`
	FloatOps     map[string]int `json:"float_ops,omitempty"`
	Absorbed     int            `json:"absorbed_activations"`
	FloatLayers  []FloatLayer   `json:"float_layers,omitempty"`
	BudgetMet    *bool          `json:"budget_met,omitempty"`

	FP32 ModelStats `json:"fp32"`
	INT8 ModelStats `json:"int8"`
	// FP32Prepared is the float model after the same clean-up quantization
	// starts from (folded BN, upgraded opset): the fair float baseline.
	FP32Prepared *ModelStats `json:"fp32_prepared,omitempty"`

	Cosine    map[string]float64 `json:"cosine,omitempty"`
	CosineMin float64            `json:"cosine_min,omitempty"`
	APDrop    *float64           `json:"ap_drop,omitempty"`
	Speedup   float64            `json:"speedup,omitempty"`
	// ORTOps counts the op types ONNX Runtime runs for the int8 model after
	// its QDQ fusions (QLinearConv, QLinearAdd, …): what really runs in 8 bits.
	ORTOps map[string]int `json:"ort_ops,omitempty"`
}

func (o *Options) defaults() {
	if o.Method == "" {
		o.Method = DefaultMethod
	}
	if o.Percentile == 0 {
		o.Percentile = DefaultPercentile
	}
	if o.Activations == "" {
		o.Activations = Uint8
	}
	if o.CalibImages == 0 {
		o.CalibImages = DefaultCalibImages
	}
	if o.EvalImages == 0 {
		o.EvalImages = DefaultEvalImages
	}
	if o.BenchRuns == 0 {
		o.BenchRuns = DefaultBenchRuns
	}
	if o.MaxFloatLayers == 0 {
		o.MaxFloatLayers = DefaultMaxFloatLayers
	}
}

func (o *Options) validate() error {
	switch {
	case o.Model == "":
		return errors.New("quantize: no input model (--model)")
	case o.Out == "":
		return errors.New("quantize: no output path (--out)")
	case filepath.Clean(o.Model) == filepath.Clean(o.Out):
		return fmt.Errorf("quantize: output %s would overwrite the input model", o.Out)
	case o.Calib == "" && o.CalibCache == "":
		return errors.New("quantize: no calibration images (--calib) and no calibration cache (--calib-cache)")
	case o.MaxAPDrop > 0 && o.Labels == "":
		return errors.New("quantize: --max-ap-drop needs labelled data (--labels)")
	case o.MaxAPDrop < 0 || math.IsNaN(o.MaxAPDrop):
		return fmt.Errorf("quantize: max AP drop %v, want a positive number of AP points", o.MaxAPDrop)
	case o.MinCosine < 0 || o.MinCosine > 1 || math.IsNaN(o.MinCosine):
		return fmt.Errorf("quantize: min cosine %v, want a value in (0, 1]", o.MinCosine)
	case o.MaxAPDrop > 0 && o.MinCosine > 0:
		return errors.New("quantize: give one fallback budget, --max-ap-drop or --min-cosine, not both")
	case o.CalibImages < 0 || o.EvalImages < 0 || o.BenchRuns < 0 || o.MaxFloatLayers < 0 || o.Threads < 0 || o.LabelImages < 0:
		return errors.New("quantize: image counts, runs, layers and threads must not be negative")
	}
	if _, err := ParseMethod(string(o.Method)); err != nil {
		return err
	}
	if _, err := ParseActivations(string(o.Activations)); err != nil {
		return err
	}
	if !(o.Percentile > 0 && o.Percentile <= 100) {
		return fmt.Errorf("quantize: percentile %v, want a value in (0, 100]", o.Percentile)
	}
	if dir := filepath.Dir(o.Out); dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("quantize: output folder %s does not exist", dir)
		}
	}
	return nil
}

// Run quantizes a float ONNX model to QDQ INT8 and reports what it did.
// The output file is written only when everything succeeded: a failure at
// any step leaves no file at Out.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	m, err := onnxgraph.Load(opts.Model)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	if err := ort.Init(); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	prep, err := Prepare(m, opts.Model, !opts.PerTensor)
	if err != nil {
		return nil, err
	}
	for _, n := range prep.Notes {
		logf("%s", n)
	}
	// The full plan (nothing excluded, no ReLU absorbed, tail included)
	// quantizes a superset of the tensors of any other plan: calibrating all
	// of its tensors makes the ranges (and the cache) valid for every
	// exclusion and fallback.
	full, err := NewPlan(prep, Selection{Activations: Int8, QuantizeTail: true})
	if err != nil {
		return nil, fmt.Errorf("%w in %s", err, opts.Model)
	}
	sel := Selection{Exclude: opts.Exclude, Activations: opts.Activations, QuantizeTail: opts.QuantizeTail}
	plan, err := NewPlan(prep, sel)
	if err != nil {
		return nil, fmt.Errorf("%w in %s", err, opts.Model)
	}
	pre, notes, err := resolvePreprocess(m, opts, prep)
	if err != nil {
		return nil, err
	}
	prep.Notes = append(prep.Notes, notes...)
	for _, n := range notes {
		logf("%s", n)
	}
	shape := inputShape(prep.InputShape, pre)

	rep := &Report{Model: opts.Model, Out: opts.Out, Method: opts.Method, Activations: opts.Activations,
		PerChannel: plan.PerChannel, Preprocess: pre}
	if opts.Method == Percentile {
		rep.Percentile = opts.Percentile
	}
	ranges, evalInputs, err := calibrationRanges(ctx, opts, prep, full, pre, rep, logf)
	if err != nil {
		return nil, err
	}
	q, err := Build(plan, ranges, opts.Activations)
	if err != nil {
		return nil, err
	}

	ref, err := newRunner(prep.Model, prep.Input, shape, nil, runnerOptions{Threads: opts.Threads})
	if err != nil {
		return nil, err
	}
	defer ref.close()

	var labels *labelled
	if opts.Labels != "" {
		logf("loading labels from %s", opts.Labels)
		if labels, err = loadLabelled(opts.Labels, opts.LabelsSplit, opts.LabelImages, opts.Log); err != nil {
			return nil, err
		}
	}

	// Temporary files live next to Out so the final rename is atomic.
	tmpDir, err := os.MkdirTemp(filepath.Dir(opts.Out), ".gidedge-quantize-*")
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	defer os.RemoveAll(tmpDir)

	var fp32AP float64
	if labels != nil {
		ap, ap50, err := labels.averagePrecision(ctx, opts.Model, opts.Threads)
		if err != nil {
			return nil, err
		}
		fp32AP = ap
		rep.FP32.AP, rep.FP32.AP50 = &ap, &ap50
		logf("fp32 AP %.2f AP50 %.2f on %d labelled images", ap, ap50, len(labels.images))
	}

	if opts.MaxAPDrop > 0 || opts.MinCosine > 0 {
		if len(evalInputs) == 0 {
			return nil, errors.New("quantize: the fallback needs calibration images (--calib) to rank layers")
		}
		b := budget{}
		if opts.MaxAPDrop > 0 {
			candidate := filepath.Join(tmpDir, "candidate.onnx")
			b = budget{name: "AP drop", limit: opts.MaxAPDrop, score: func(ctx context.Context, q *onnxpb.ModelProto) (float64, bool, error) {
				if err := onnxgraph.Save(candidate, q); err != nil {
					return 0, false, err
				}
				ap, _, err := labels.averagePrecision(ctx, candidate, opts.Threads)
				if err != nil {
					return 0, false, err
				}
				drop := fp32AP - ap
				return drop, drop <= opts.MaxAPDrop, nil
			}}
		} else {
			fin := fallbackInput{prep: prep, ref: ref, inputs: evalInputs, shape: shape, threads: opts.Threads}
			b = budget{name: "min cosine", limit: opts.MinCosine, score: func(ctx context.Context, q *onnxpb.ModelProto) (float64, bool, error) {
				c, err := cosineOf(q, fin)
				return c, c >= opts.MinCosine, err
			}}
		}
		fin := fallbackInput{prep: prep, sel: sel, ranges: ranges, act: opts.Activations, ref: ref, inputs: evalInputs,
			shape: shape, threads: opts.Threads, maxFloat: opts.MaxFloatLayers, logf: logf}
		var metric float64
		plan, q, rep.FloatLayers, metric, err = fallback(ctx, fin, plan, q, b)
		if err != nil {
			return nil, err
		}
		met := metric <= b.limit
		if b.name == "min cosine" {
			met = metric >= b.limit
		}
		rep.BudgetMet = &met
		if !met {
			rep.Notes = append(rep.Notes, fmt.Sprintf("accuracy budget (%s %.4g) not met with %d layers in float; raise --max-float-layers or relax the budget", b.name, b.limit, len(rep.FloatLayers)))
		}
	}
	rep.QuantizedOps, rep.FloatOps = opCounts(plan)
	rep.Absorbed = len(plan.Absorbed)

	tmpOut := filepath.Join(tmpDir, filepath.Base(opts.Out))
	if err := onnxgraph.Save(tmpOut, q); err != nil {
		return nil, err
	}
	if len(evalInputs) > 0 {
		qr, err := newRunner(q, prep.Input, shape, nil, runnerOptions{Threads: opts.Threads})
		if err != nil {
			return nil, err
		}
		rep.Cosine, err = outputCosines(ref, qr, evalInputs)
		qr.close()
		if err != nil {
			return nil, err
		}
		rep.CosineMin = minCosine(rep.Cosine)
	}
	if err := measureModels(ctx, opts, rep, m, prep, q, shape, evalInputs, labels, tmpOut, fp32AP, logf); err != nil {
		return nil, err
	}
	rep.Notes = append(prep.Notes, rep.Notes...)
	if err := os.Rename(tmpOut, opts.Out); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	if st, err := os.Stat(opts.Out); err == nil {
		rep.INT8.SizeBytes = st.Size()
	}
	rep.INT8.Path = opts.Out
	return rep, nil
}

// calibrationRanges returns the ranges of every tensor of the full plan,
// from the cache when it matches, else by running calibration (and then
// writing the cache), plus the first EvalImages preprocessed inputs.
func calibrationRanges(ctx context.Context, opts Options, prep *Prepared, full *Plan, pre infer.Preprocess, rep *Report, logf func(string, ...any)) (map[string]Range, [][]float32, error) {
	var images []string
	if opts.Calib != "" {
		var err error
		if images, err = ListImages(opts.Calib, opts.CalibImages); err != nil {
			return nil, nil, err
		}
	}
	var sha string
	if opts.CalibCache != "" {
		var err error
		if sha, err = FileSHA256(opts.Model); err != nil {
			return nil, nil, err
		}
		cache, err := ReadCalibCache(opts.CalibCache)
		if err != nil {
			return nil, nil, err
		}
		if cache != nil {
			if err := cache.Check(opts.CalibCache, sha, opts.Method, opts.Percentile, opts.Activations, full.Tensors); err != nil {
				return nil, nil, err
			}
			logf("calibration ranges from %s (%d tensors, %d images)", opts.CalibCache, len(cache.Tensors), cache.Images)
			rep.CalibCache = opts.CalibCache
			rep.CalibImages = cache.Images
			var inputs [][]float32
			for _, path := range images[:min(len(images), opts.EvalImages)] {
				x, err := LoadInput(path, pre)
				if err != nil {
					return nil, nil, err
				}
				inputs = append(inputs, x)
			}
			return cache.Tensors, inputs, nil
		}
		if len(images) == 0 {
			return nil, nil, fmt.Errorf("quantize: calibration cache %s does not exist yet and no calibration images (--calib) were given", opts.CalibCache)
		}
	}
	logf("calibrating %d tensors on %d images (%s)", len(full.Tensors), len(images), opts.Method)
	cal, inputs, err := Calibrate(ctx, prep, full.Tensors, images, CalibrateOptions{
		Preprocess: pre, Threads: opts.Threads, Keep: opts.EvalImages,
		Progress: func(done, total int) {
			if done%25 == 0 || done == total {
				logf("calibration: %d/%d images", done, total)
			}
		},
	})
	if err != nil {
		return nil, nil, err
	}
	ranges, err := cal.Ranges(opts.Method, opts.Percentile, opts.Activations)
	if err != nil {
		return nil, nil, err
	}
	rep.CalibImages = cal.Images
	if opts.CalibCache != "" {
		c := &CalibCache{ModelSHA256: sha, Method: opts.Method, Activations: opts.Activations, Images: cal.Images, Tensors: ranges}
		if opts.Method == Percentile {
			c.Percentile = opts.Percentile
		}
		if err := WriteCalibCache(opts.CalibCache, c); err != nil {
			return nil, nil, err
		}
		logf("wrote calibration cache %s", opts.CalibCache)
	}
	return ranges, inputs, nil
}

// resolvePreprocess finds how images become the model's input: gidedge
// metadata or a known adapter (NanoDet, UltraFace) first, then the user's
// overrides; for an unknown model without overrides a generic RGB, 0..1
// stretch is assumed and a note says so.
func resolvePreprocess(m *onnxpb.ModelProto, opts Options, prep *Prepared) (infer.Preprocess, []string, error) {
	var notes []string
	h, w := int(prep.InputShape[2]), int(prep.InputShape[3])
	pre := infer.Preprocess{Width: w, Height: h, Layout: infer.LayoutNCHW, ChannelOrder: infer.OrderRGB,
		Resize: infer.ResizeStretch, PixelScale: 1.0 / 255, Std: [3]float32{1, 1, 1}}
	source, unknown := "", ""
	info, ok, err := infer.ReadModelInfo(onnxgraph.Metadata(m))
	switch {
	case err != nil:
		return pre, nil, fmt.Errorf("quantize: %s: %w", opts.Model, err)
	case ok:
		pre, source = info.Input, "gidedge metadata"
	default:
		d, err := infer.Open(opts.Model, infer.Options{})
		if err != nil {
			unknown = err.Error()
			break
		}
		desc := d.Describe()
		pre, source = desc.Input, desc.Adapter+" adapter"
		d.Close()
	}
	o := opts.Preprocess
	if source == "" && !o.any() {
		notes = append(notes, "the model carries no preprocessing ("+unknown+"): assuming RGB, stretch resize, pixels/255; pass --mean/--std/--channel-order/--resize/--pixel-scale if it expects otherwise")
	} else if source != "" {
		notes = append(notes, "preprocessing from the "+source)
	}
	if o.Mean != nil {
		pre.Mean = *o.Mean
	}
	if o.Std != nil {
		pre.Std = *o.Std
	}
	if o.ChannelOrder != "" {
		pre.ChannelOrder = o.ChannelOrder
	}
	if o.Resize != "" {
		pre.Resize = o.Resize
	}
	if o.PadValue != nil {
		pre.PadValue = *o.PadValue
	}
	if o.PixelScale != nil {
		pre.PixelScale = *o.PixelScale
	}
	if o.Width > 0 {
		pre.Width = o.Width
	}
	if o.Height > 0 {
		pre.Height = o.Height
	}
	if pre.Width <= 0 || pre.Height <= 0 {
		return pre, nil, fmt.Errorf("quantize: %s input %q has dynamic size %v: give the calibration size with --input-size WxH", opts.Model, prep.Input, prep.InputShape)
	}
	if (h > 0 && h != pre.Height) || (w > 0 && w != pre.Width) {
		return pre, nil, fmt.Errorf("quantize: %s input %q has shape %v but preprocessing makes %dx%d images", opts.Model, prep.Input, prep.InputShape, pre.Width, pre.Height)
	}
	if err := pre.Validate(); err != nil {
		return pre, nil, fmt.Errorf("quantize: %w", err)
	}
	return pre, notes, nil
}

// opCounts counts a plan's quantized nodes and the quantizable ones it left
// in float, by op type.
func opCounts(p *Plan) (map[string]int, map[string]int) {
	q := map[string]int{}
	for _, n := range p.Model.Graph.Node {
		if _, ok := p.Nodes[n.Name]; ok {
			q[n.OpType]++
		}
	}
	f := map[string]int{}
	for k, v := range p.Skipped {
		f[k] = v
	}
	if len(f) == 0 {
		f = nil
	}
	return q, f
}

// measureModels fills sizes, latency, ORT's fused ops and mAP.
func measureModels(ctx context.Context, opts Options, rep *Report, m *onnxpb.ModelProto, prep *Prepared, q *onnxpb.ModelProto,
	shape []int64, inputs [][]float32, labels *labelled, qPath string, fp32AP float64, logf func(string, ...any)) error {
	if st, err := os.Stat(opts.Model); err == nil {
		rep.FP32 = ModelStats{Path: opts.Model, SizeBytes: st.Size(), AP: rep.FP32.AP, AP50: rep.FP32.AP50}
	}
	if labels != nil {
		ap, ap50, err := labels.averagePrecision(ctx, qPath, opts.Threads)
		if err != nil {
			return err
		}
		rep.INT8.AP, rep.INT8.AP50 = &ap, &ap50
		drop := fp32AP - ap
		rep.APDrop = &drop
		logf("int8 AP %.2f AP50 %.2f (drop %.2f)", ap, ap50, drop)
	}
	if !opts.Report {
		return nil
	}
	ops, err := optimizedOps(q, prep.Input, shape, opts.Threads)
	if err != nil {
		return err
	}
	rep.ORTOps = ops
	x := make([]float32, shape[1]*shape[2]*shape[3])
	if len(inputs) > 0 {
		x = inputs[0]
	}
	logf("timing fp32 and int8, %d runs each", opts.BenchRuns)
	lat, err := compareLatency([]*onnxpb.ModelProto{m, prep.Model, q}, prep.Input, shape, x, opts.BenchRuns, opts.Threads)
	if err != nil {
		return err
	}
	rep.FP32.LatencyMs, rep.FP32.LatencyP99Ms, rep.FP32.CPUMs = lat[0].MedianMs, lat[0].P99Ms, lat[0].CPUMs
	rep.FP32Prepared = &ModelStats{SizeBytes: modelBytes(prep.Model), LatencyMs: lat[1].MedianMs, LatencyP99Ms: lat[1].P99Ms, CPUMs: lat[1].CPUMs}
	rep.INT8.LatencyMs, rep.INT8.LatencyP99Ms, rep.INT8.CPUMs = lat[2].MedianMs, lat[2].P99Ms, lat[2].CPUMs
	if lat[2].MedianMs > 0 {
		rep.Speedup = lat[0].MedianMs / lat[2].MedianMs
	}
	return nil
}

// compareLatency times several models on the same input, interleaving
// blocks of runs so machine load drifts hit all of them alike.
func compareLatency(models []*onnxpb.ModelProto, input string, shape []int64, x []float32, runs, threads int) ([]Latency, error) {
	runners := make([]*runner, len(models))
	defer func() {
		for _, r := range runners {
			r.close()
		}
	}()
	for i, m := range models {
		r, err := newRunner(m, input, shape, nil, runnerOptions{Threads: threads})
		if err != nil {
			return nil, err
		}
		runners[i] = r
	}
	const block = 10
	times := make([][]float64, len(models))
	cpu := make([]float64, len(models))
	for i, r := range runners {
		if _, err := measureLatency(r, x, 5, 1); err != nil {
			return nil, err
		}
		times[i] = make([]float64, 0, runs)
	}
	for done := 0; done < runs; done += block {
		n := min(block, runs-done)
		for i, r := range runners {
			l, c, err := measureLatencyRaw(r, x, n)
			if err != nil {
				return nil, err
			}
			times[i] = append(times[i], l...)
			cpu[i] += c
		}
	}
	out := make([]Latency, len(models))
	for i, t := range times {
		sort.Float64s(t)
		sum := 0.0
		for _, v := range t {
			sum += v
		}
		out[i] = Latency{MedianMs: percentileOf(t, 0.5), P99Ms: percentileOf(t, 0.99), MeanMs: sum / float64(len(t)),
			CPUMs: cpu[i] / float64(len(t)), Runs: len(t)}
	}
	return out, nil
}

// WriteText prints a report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "quantized %s -> %s\n", r.Model, r.Out)
	pct := ""
	if r.Method == Percentile {
		pct = fmt.Sprintf(" %v%%", r.Percentile)
	}
	weights := "per-channel"
	if !r.PerChannel {
		weights = "per-tensor"
	}
	fmt.Fprintf(&b, "  calibration: %s%s on %d images; activations %s, weights int8 %s\n", r.Method, pct, r.CalibImages, r.Activations, weights)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	fmt.Fprintf(&b, "  quantized ops: %s", countList(r.QuantizedOps))
	if r.Absorbed > 0 {
		fmt.Fprintf(&b, " (+%d ReLU/Clip absorbed into the uint8 range)", r.Absorbed)
	}
	b.WriteString("\n")
	if len(r.FloatOps) > 0 {
		fmt.Fprintf(&b, "  left in float: %s\n", countList(r.FloatOps))
	}
	for _, f := range r.FloatLayers {
		fmt.Fprintf(&b, "  kept float: %s (%s): %s; after: %.4g\n", f.Node, f.OpType, f.Reason, f.After)
	}
	if len(r.ORTOps) > 0 {
		fmt.Fprintf(&b, "  ONNX Runtime runs: %s\n", countList(r.ORTOps))
	}
	fmt.Fprintf(&b, "  %-14s %12s %12s\n", "", "fp32", "int8")
	fmt.Fprintf(&b, "  %-14s %12s %12s\n", "size", human.Bytes(r.FP32.SizeBytes), human.Bytes(r.INT8.SizeBytes))
	if r.FP32.LatencyMs > 0 {
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f   (%.2fx; fp32 after clean-up %.2f ms)\n", "latency ms", r.FP32.LatencyMs, r.INT8.LatencyMs, r.Speedup, r.FP32Prepared.LatencyMs)
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f\n", "latency p99 ms", r.FP32.LatencyP99Ms, r.INT8.LatencyP99Ms)
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f   (%.2fx)\n", "cpu ms/run", r.FP32.CPUMs, r.INT8.CPUMs, r.FP32.CPUMs/r.INT8.CPUMs)
	}
	if r.FP32.AP != nil && r.INT8.AP != nil {
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f   (drop %.2f)\n", "AP", *r.FP32.AP, *r.INT8.AP, *r.APDrop)
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f\n", "AP50", *r.FP32.AP50, *r.INT8.AP50)
	}
	if len(r.Cosine) > 0 {
		names := make([]string, 0, len(r.Cosine))
		for k := range r.Cosine {
			names = append(names, k)
		}
		sort.Strings(names)
		b.WriteString("  cosine fp32 vs int8:")
		for _, k := range names {
			fmt.Fprintf(&b, " %s %.4f", k, r.Cosine[k])
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func countList(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
