package quantize

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/hostinfo"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
	"github.com/gidedge/gidedge/ort"
)

// Run quantizes a float ONNX model to QDQ INT8 and reports what it did.
// The output file is written only when everything succeeded: a failure at
// any step leaves no file at Out.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	j, err := openJob(opts)
	if err != nil {
		return nil, err
	}
	defer j.close()
	if err := j.calibrate(ctx); err != nil {
		return nil, err
	}
	q, err := Build(j.plan, j.ranges)
	if err != nil {
		return nil, err
	}
	if err := j.openReference(ctx); err != nil {
		return nil, err
	}
	if opts.SpeedProbe && j.plan.Activations == Uint8 {
		if q, err = j.speedProbe(ctx, q); err != nil {
			return nil, err
		}
	}
	if opts.Budget.Active() {
		if q, err = j.fallback(ctx, q); err != nil {
			return nil, err
		}
	}
	j.rep.QuantizedOps, j.rep.FloatOps = opCounts(j.plan)
	j.rep.Absorbed = len(j.plan.Absorbed)
	tmpOut := filepath.Join(j.tmpDir, filepath.Base(opts.Out))
	if err := onnxgraph.Save(tmpOut, q); err != nil {
		return nil, err
	}
	if err := j.compareOutputs(q); err != nil {
		return nil, err
	}
	if err := j.measure(ctx, q, tmpOut); err != nil {
		return nil, err
	}
	if opts.Debug {
		if err := j.debug(ctx, q); err != nil {
			return nil, err
		}
	}
	return j.commit(tmpOut)
}

// job carries one Run's models, plans and measurements from step to step.
type job struct {
	opts Options
	logf func(format string, args ...any)
	cpu  hostinfo.CPU

	model *onnxpb.ModelProto // as loaded
	prep  *Prepared
	// clean is the prepared float graph before equalization: the fair
	// float baseline for speed (equalization adds a Mul per SiLU).
	clean *onnxpb.ModelProto
	// full quantizes a superset of the tensors of any plan this run may
	// build (nothing excluded, tail included), so one calibration serves
	// every exclusion and fallback candidate.
	full  *Plan
	sel   Selection
	plan  *Plan
	pre   infer.Preprocess
	shape []int64

	ranges map[string]Range
	inputs [][]float32 // the first EvalImages calibration inputs
	images []string    // calibration image files
	ref    *runner     // the prepared float model
	labels *labelled
	// tmpDir holds candidates and the output before its rename; it sits
	// next to Out so the rename is atomic.
	tmpDir string
	rep    *Report
}

// openJob loads and prepares the model, plans what to quantize and resolves
// the preprocessing.
func openJob(opts Options) (*job, error) {
	j := &job{opts: opts, cpu: hostinfo.ReadCPU(), logf: func(string, ...any) {}}
	if opts.Log != nil {
		j.logf = func(format string, args ...any) { fmt.Fprintf(opts.Log, format+"\n", args...) }
	}
	m, err := onnxgraph.Load(opts.Model)
	if err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	if err := ort.Init(); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	j.model = m
	if j.prep, err = Prepare(m, opts.Model, !opts.PerTensor); err != nil {
		return nil, err
	}
	j.clean = j.prep.Model
	weights, note := resolveWeights(opts.Weights, j.cpu)
	j.sel = Selection{Exclude: opts.Exclude, Activations: opts.Activations, QuantizeTail: opts.QuantizeTail, Weights: weights}
	pre, notes, err := resolvePreprocess(m, opts, j.prep)
	if err != nil {
		return nil, err
	}
	j.pre = pre
	j.shape = inputShape(j.prep.InputShape, pre)
	j.rep = &Report{Model: opts.Model, Out: opts.Out, Host: hostOf(j.cpu), Method: opts.Method, Activations: opts.Activations,
		Weights: weights, PerChannel: j.prep.PerChannel, Preprocess: pre}
	if opts.Method == Percentile {
		j.rep.Percentile = opts.Percentile
	}
	j.prep.Notes = append(j.prep.Notes, notes...)
	if note != "" {
		j.prep.Notes = append(j.prep.Notes, note)
	}
	for _, n := range j.prep.Notes {
		j.logf("%s", n)
	}
	if opts.Calib != "" {
		if j.images, err = ListImages(opts.Calib, opts.CalibImages); err != nil {
			return nil, err
		}
	}
	if j.tmpDir, err = os.MkdirTemp(filepath.Dir(opts.Out), ".gidedge-quantize-*"); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	return j, nil
}

// resolveWeights turns WeightsAuto into the grid this CPU wants.
func resolveWeights(w WeightRange, cpu hostinfo.CPU) (WeightRange, string) {
	if w != WeightsAuto {
		return w, ""
	}
	if cpu.Saturates() {
		return WeightsReduced, fmt.Sprintf("weights use 7 bits (reduce range): this CPU (%s) has no VNNI, so ONNX Runtime's u8×s8 kernels add pairs of products in 16 bits, which full-range weights can saturate; --weights full to override", cpu.Model)
	}
	return WeightsFull, ""
}

func (j *job) close() {
	j.ref.close()
	if j.tmpDir != "" {
		os.RemoveAll(j.tmpDir)
	}
}

// calibrate equalizes the graph's channels, plans what to quantize and
// fills the ranges of every tensor of the full plan: from the cache when it
// matches, else by running calibration (and then writing the cache). It
// keeps the first EvalImages preprocessed inputs.
func (j *job) calibrate(ctx context.Context) error {
	opts := j.opts
	key := CacheKey{Method: opts.Method, Activations: opts.Activations, Equalize: "off",
		ActivationAware: !opts.NoActivationAware && opts.Activations == Uint8}
	if !opts.NoEqualize {
		key.Equalize = strconv.FormatFloat(opts.EqualizeStrength, 'g', -1, 64)
	}
	if opts.Method == Percentile {
		key.Percentile = opts.Percentile
	}
	var cache *CalibCache
	if opts.CalibCache != "" {
		var err error
		if key.ModelSHA256, err = FileSHA256(opts.Model); err != nil {
			return err
		}
		if cache, err = ReadCalibCache(opts.CalibCache); err != nil {
			return err
		}
		if cache == nil && len(j.images) == 0 {
			return fmt.Errorf("quantize: calibration cache %s does not exist yet and no calibration images (--calib) were given", opts.CalibCache)
		}
	}
	for _, path := range j.images[:min(len(j.images), opts.EvalImages)] {
		x, err := LoadInput(path, j.pre)
		if err != nil {
			return err
		}
		j.inputs = append(j.inputs, x)
	}
	var stats ChannelStats
	if !opts.NoEqualize {
		var err error
		if cache != nil {
			stats = cache.Channels
		} else if stats, err = j.channelStats(ctx); err != nil {
			return err
		}
		if err := j.equalize(ctx, stats); err != nil {
			return err
		}
	}
	var err error
	if j.full, err = NewPlan(j.prep, Selection{Activations: Int8, QuantizeTail: true}); err != nil {
		return fmt.Errorf("%w in %s", err, opts.Model)
	}
	if j.plan, err = NewPlan(j.prep, j.sel); err != nil {
		return fmt.Errorf("%w in %s", err, opts.Model)
	}
	if cache != nil {
		if err := cache.Check(opts.CalibCache, key, j.full.Tensors); err != nil {
			return err
		}
		j.logf("calibration ranges from %s (%d tensors, %d images)", opts.CalibCache, len(cache.Tensors), cache.Images)
		j.rep.CalibCache = opts.CalibCache
		j.rep.CalibImages = cache.Images
		j.ranges = cache.Tensors
		return nil
	}
	j.logf("calibrating %d tensors on %d images (%s)", len(j.full.Tensors), len(j.images), opts.Method)
	cal, _, err := Calibrate(ctx, j.prep, j.full.Tensors, j.images, CalibrateOptions{
		Preprocess: j.pre, Threads: opts.Threads,
		Progress: func(done, total int) {
			if done%25 == 0 || done == total {
				j.logf("calibration: %d/%d images", done, total)
			}
		},
	})
	if err != nil {
		return err
	}
	if j.ranges, err = cal.Ranges(opts.Method, opts.Percentile, opts.Activations); err != nil {
		return err
	}
	if key.ActivationAware {
		if n := refineActivationRanges(j.prep.Model, cal.Histograms, j.ranges); n > 0 {
			j.prep.Notes = append(j.prep.Notes, fmt.Sprintf("lower bounds of %d tensors read only by a LeakyReLU or SiLU set to minimise the error after the activation", n))
		}
	}
	j.rep.CalibImages = cal.Images
	if opts.CalibCache != "" {
		c := &CalibCache{CacheKey: key, Images: cal.Images, Channels: stats, Tensors: j.ranges}
		if err := WriteCalibCache(opts.CalibCache, c); err != nil {
			return err
		}
		j.logf("wrote calibration cache %s", opts.CalibCache)
	}
	return nil
}

// channelStats measures per-channel ranges on the first calibration images.
func (j *job) channelStats(ctx context.Context) (ChannelStats, error) {
	if len(j.images) == 0 {
		return nil, ErrNoImages
	}
	var inputs [][]float32
	for _, path := range j.images[:min(len(j.images), equalizeStatImages)] {
		x, err := LoadInput(path, j.pre)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, x)
	}
	j.logf("measuring per-channel ranges on %d images for equalization", len(inputs))
	return collectChannelStats(ctx, j.prep.Model, j.prep.Input, j.shape, inputs, j.opts.Threads)
}

// equalize rewrites the prepared graph with equalized channels and checks
// that it still computes what it did.
func (j *job) equalize(ctx context.Context, stats ChannelStats) error {
	m, res, err := Equalize(j.prep.Model, stats, j.opts.EqualizeStrength)
	if err != nil {
		return err
	}
	if res.Tensors == 0 {
		return nil
	}
	if len(j.inputs) > 0 {
		if err := sameOutputs(j.prep.Model, m, j.prep.Input, j.shape, j.inputs[:1], j.opts.Threads); err != nil {
			return err
		}
	}
	j.prep.Model = m
	note := fmt.Sprintf("equalized the channels of %d activations (%d of %d channel groups free, %d SiLU gates rewritten): the widest channel-range ratio within a tensor went from %.0f to %.0f",
		res.Tensors, res.Free, res.Groups, res.SiLUs, res.SpreadBefore, res.SpreadAfter)
	j.prep.Notes = append(j.prep.Notes, note)
	j.logf("%s", note)
	return nil
}

// sameOutputs checks that two float models agree on the inputs to within
// 1e-3 of each output's largest value: equalization must not change what
// the model computes.
func sameOutputs(a, b *onnxpb.ModelProto, input string, shape []int64, inputs [][]float32, threads int) error {
	ra, err := newRunner(a, input, shape, nil, runnerOptions{Threads: threads})
	if err != nil {
		return err
	}
	defer ra.close()
	rb, err := newRunner(b, input, shape, nil, runnerOptions{Threads: threads})
	if err != nil {
		return err
	}
	defer rb.close()
	for _, x := range inputs {
		oa, err := ra.run(x)
		if err != nil {
			return err
		}
		ob, err := rb.run(x)
		if err != nil {
			return err
		}
		for i := range oa {
			scale, diff := 0.0, 0.0
			for k, v := range oa[i] {
				scale = math.Max(scale, math.Abs(float64(v)))
				diff = math.Max(diff, math.Abs(float64(v)-float64(ob[i][k])))
			}
			if diff > 1e-3*math.Max(scale, 1e-6) {
				return fmt.Errorf("quantize: equalization changed output %q by %.3g (its scale %.3g): a bug, rerun with --equalize=false and report it", ra.outputs[i], diff, scale)
			}
		}
	}
	return nil
}

// openReference starts the float reference session and, with labels,
// scores the float model.
func (j *job) openReference(ctx context.Context) error {
	var err error
	if j.ref, err = newRunner(j.prep.Model, j.prep.Input, j.shape, nil, runnerOptions{Threads: j.opts.Threads}); err != nil {
		return err
	}
	if j.opts.Labels == "" {
		return nil
	}
	j.logf("loading labels from %s", j.opts.Labels)
	if j.labels, err = loadLabelled(j.opts.Labels, j.opts.LabelsSplit, j.opts.LabelImages, j.opts.Log); err != nil {
		return err
	}
	ap, ap50, err := j.labels.averagePrecision(ctx, j.opts.Model, j.opts.Threads)
	if err != nil {
		return err
	}
	j.rep.FP32.AP, j.rep.FP32.AP50 = &ap, &ap50
	j.logf("fp32 AP %.2f AP50 %.2f on %d labelled images", ap, ap50, len(j.labels.images))
	return nil
}

// compareOutputs fills the per-output cosine similarity of the fused int8
// model against the float one on the eval inputs.
func (j *job) compareOutputs(q *onnxpb.ModelProto) error {
	if len(j.inputs) == 0 {
		return nil
	}
	qr, err := newRunner(q, j.prep.Input, j.shape, nil, runnerOptions{Threads: j.opts.Threads})
	if err != nil {
		return err
	}
	defer qr.close()
	if j.rep.Cosine, err = outputCosines(j.ref, qr, j.inputs); err != nil {
		return err
	}
	j.rep.CosineMin = minCosine(j.rep.Cosine)
	return nil
}

// speedProbe times every weighted layer as an 8-bit kernel and as a float
// layer between Dequantize and Quantize, and keeps float the layers whose
// 8-bit kernels are slower on this CPU.
func (j *job) speedProbe(ctx context.Context, q *onnxpb.ModelProto) (*onnxpb.ModelProto, error) {
	ix := onnxgraph.NewIndex(j.plan.Model.Graph)
	var names []string
	seen := map[string]bool{}
	inputOf := map[string]string{}
	for _, n := range j.plan.Model.Graph.Node {
		if j.plan.Nodes[n.Name] == classWeighted {
			inputOf[n.Name] = n.Input[0]
			if !seen[n.Input[0]] && !ix.IsGraphInput(n.Input[0]) {
				seen[n.Input[0]] = true
				names = append(names, n.Input[0])
			}
		}
	}
	exposed, err := onnxgraph.ExposeOutputs(j.prep.Model, names, onnxgraph.Float32)
	if err != nil {
		return nil, fmt.Errorf("quantize: speed probe: %w", err)
	}
	r, err := newRunner(exposed, j.prep.Input, j.shape, names, runnerOptions{Threads: j.opts.Threads})
	if err != nil {
		return nil, err
	}
	_, shapes, err := r.runShaped(j.sampleInput())
	r.close()
	if err != nil {
		return nil, err
	}
	shapeOf := map[string][]int64{j.prep.Input: j.shape}
	for i, n := range names {
		shapeOf[n] = shapes[i]
	}
	inputShapes := map[string][]int64{}
	for w, in := range inputOf {
		inputShapes[w] = shapeOf[in]
	}
	j.logf("timing %d layers as 8-bit and float kernels", len(j.plan.Weighted))
	speeds, err := probeLayers(ctx, j.plan, q, inputShapes, j.opts.Threads)
	if err != nil {
		return nil, err
	}
	j.rep.LayerSpeed = speeds
	// A float layer between 8-bit ones also costs layout changes the
	// one-layer models do not see (ONNX Runtime runs 8-bit convolutions in
	// NHWC, float ones in blocked NCHW), so only clear wins are tried, and
	// the whole model decides.
	total := 0.0
	for _, s := range speeds {
		total += s.Int8Ms
	}
	var slow []string
	saved := 0.0
	for _, s := range speeds {
		if s.Int8Ms > probeMargin*s.FloatMs && s.Int8Ms-s.FloatMs >= probeShare*total {
			slow = append(slow, s.Node)
			saved += s.Int8Ms - s.FloatMs
		}
	}
	if len(slow) == 0 || len(slow) == len(j.plan.Weighted) {
		return q, nil
	}
	sel := j.sel
	sel.FloatForSpeed = slow
	plan, err := NewPlan(j.prep, sel)
	if err != nil {
		return nil, err
	}
	cand, err := Build(plan, j.ranges)
	if err != nil {
		return nil, err
	}
	lat, err := compareLatency([]*onnxpb.ModelProto{q, cand}, j.prep.Input, j.shape, j.sampleInput(), fallbackTimingRuns, j.opts.Threads)
	if err != nil {
		return nil, err
	}
	if lat[1].CPUMs >= probeMargin*0.8*lat[0].CPUMs { // no clear win on the whole model
		j.logf("speed probe: keeping %s float would not make the model faster (CPU ms %.2f against %.2f)", strings.Join(slow, ", "), lat[1].CPUMs, lat[0].CPUMs)
		return q, nil
	}
	j.sel, j.plan = sel, plan
	note := fmt.Sprintf("kept %d layers float whose 8-bit kernels are slower on this CPU (%s): the model's CPU time per run went from %.2f to %.2f ms", len(slow), strings.Join(slow, ", "), lat[0].CPUMs, lat[1].CPUMs)
	j.rep.Notes = append(j.rep.Notes, note)
	j.logf("%s", note)
	return cand, nil
}

// A layer is tried in float when its 8-bit kernel takes probeMargin times
// its float one and the difference is at least probeShare of all layers'
// 8-bit time.
const (
	probeMargin = 1.2
	probeShare  = 0.03
)

// debug runs the per-tensor diagnosis on the final model.
func (j *job) debug(ctx context.Context, q *onnxpb.ModelProto) error {
	if len(j.inputs) == 0 {
		return errors.New("quantize: --debug needs calibration images (--calib) to compare tensors on")
	}
	j.logf("diagnosing every quantized tensor on %d images", len(j.inputs))
	ins, err := Inspect(ctx, j.prep.Model, q, j.prep.Input, j.shape, j.inputs, InspectOptions{Threads: j.opts.Threads})
	if err != nil {
		return err
	}
	j.rep.Debug = ins
	if j.opts.DebugPlot != "" {
		if err := ins.Plot(j.opts.DebugPlot, filepath.Base(j.opts.Model)); err != nil {
			return err
		}
		j.logf("wrote %s", j.opts.DebugPlot)
	}
	return nil
}

// commit renames the output into place.
func (j *job) commit(tmpOut string) (*Report, error) {
	j.rep.Notes = append(j.prep.Notes, j.rep.Notes...)
	if err := os.Rename(tmpOut, j.opts.Out); err != nil {
		return nil, fmt.Errorf("quantize: %w", err)
	}
	if st, err := os.Stat(j.opts.Out); err == nil {
		j.rep.INT8.SizeBytes = st.Size()
	}
	j.rep.INT8.Path = j.opts.Out
	return j.rep, nil
}

// resolvePreprocess finds how images become the model's input: gidedge
// metadata or a known adapter (NanoDet, UltraFace, YOLOX) first, then the
// user's overrides; for an unknown model without overrides a generic RGB,
// 0..1 stretch is assumed and a note says so.
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
		notes = append(notes, "the model carries no preprocessing ("+unknown+"): assuming RGB, stretch resize, pixels/255; calibration on the wrong input scale gives wrong ranges, so pass --mean/--std/--channel-order/--resize/--pixel-scale if it expects otherwise")
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
