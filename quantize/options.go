package quantize

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Defaults of Options.
const (
	DefaultMethod      = MinMax
	DefaultPercentile  = 99.99
	DefaultCalibImages = 100
	DefaultEvalImages  = 8
	DefaultBenchRuns   = 100
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

// BudgetKind says what an accuracy budget bounds.
type BudgetKind int

const (
	// NoBudget turns the sensitive-layer fallback off.
	NoBudget BudgetKind = iota
	// APDropBudget bounds the AP points lost against the float model on
	// labelled images: met when the drop is at most the limit.
	APDropBudget
	// CosineBudget bounds the smallest per-output cosine similarity of the
	// quantized model to the float one: met when it is at least the limit.
	CosineBudget
)

// Budget is the accuracy the sensitive-layer fallback must keep.
type Budget struct {
	Kind  BudgetKind
	Limit float64
}

// MaxAPDrop is a budget of at most points AP lost (needs labelled data).
func MaxAPDrop(points float64) Budget { return Budget{Kind: APDropBudget, Limit: points} }

// MinCosine is a budget of an output cosine similarity of at least c.
func MinCosine(c float64) Budget { return Budget{Kind: CosineBudget, Limit: c} }

// Active reports whether the budget turns the fallback on.
func (b Budget) Active() bool { return b.Kind != NoBudget }

// Met reports whether a metric value (AP drop or cosine, per Kind) is
// within the budget.
func (b Budget) Met(metric float64) bool {
	switch b.Kind {
	case APDropBudget:
		return metric <= b.Limit
	case CosineBudget:
		return metric >= b.Limit
	}
	return true
}

// Metric names what the budget measures.
func (b Budget) Metric() string {
	switch b.Kind {
	case APDropBudget:
		return "AP drop"
	case CosineBudget:
		return "min cosine"
	}
	return "none"
}

// String is the budget as a condition ("AP drop ≤ 1", "min cosine ≥ 0.98").
func (b Budget) String() string {
	switch b.Kind {
	case APDropBudget:
		return fmt.Sprintf("AP drop ≤ %.4g", b.Limit)
	case CosineBudget:
		return fmt.Sprintf("min cosine ≥ %.4g", b.Limit)
	}
	return "none"
}

func (b Budget) validate() error {
	switch b.Kind {
	case NoBudget:
		return nil
	case APDropBudget:
		if !(b.Limit > 0) || math.IsInf(b.Limit, 0) {
			return fmt.Errorf("quantize: max AP drop %v, want a positive number of AP points", b.Limit)
		}
	case CosineBudget:
		if !(b.Limit > 0 && b.Limit <= 1) {
			return fmt.Errorf("quantize: min cosine %v, want a value in (0, 1]", b.Limit)
		}
	default:
		return fmt.Errorf("quantize: budget kind %d unknown", b.Kind)
	}
	return nil
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
	// Weights is the int8 weight grid: WeightsAuto (the default) picks
	// full range, or 7 bits where this CPU's kernels can saturate.
	Weights WeightRange
	Exclude []string // node names or op types kept in float
	// NoEqualize turns off channel equalization (see Equalize), on by
	// default; EqualizeStrength is its migration strength α (0 means
	// DefaultEqualizeStrength).
	NoEqualize       bool
	EqualizeStrength float64
	// SpeedProbe times every weighted layer as an 8-bit and a float kernel
	// on this CPU and keeps float the clear losers when that makes the whole
	// model faster (uint8 only). Off by default: timings make the output
	// depend on the machine's load.
	SpeedProbe bool
	// NoActivationAware keeps every tensor's calibrated lower bound instead
	// of fitting it to the LeakyReLU or SiLU that reads it (uint8 only).
	NoActivationAware bool
	// QuantizeTail also quantizes the ops after the last Conv/Gemm/MatMul
	// (score activations, reshapes, box decoding), which stay float by default.
	QuantizeTail bool
	CalibCache   string // JSON ranges: read when present, written after calibrating

	Preprocess PreprocessOverride

	// Labels is a VOC or COCO dataset folder; with it the report has mAP.
	Labels      string
	LabelsSplit string
	LabelImages int // at most this many labelled images (0 = all)

	// Budget turns on the sensitive-layer fallback: MaxAPDrop (needs
	// Labels) or MinCosine.
	Budget Budget
	// MaxFloatLayers caps the weighted layers the fallback may keep in
	// float (0: no cap but the model's own size).
	MaxFloatLayers int

	Report     bool // measure latency and ONNX Runtime's fused ops too
	EvalImages int  // calibration images used for cosine (default 8)
	BenchRuns  int  // timed runs per model for latency (default 100)
	Threads    int  // ONNX Runtime intra-op threads; 0 lets it choose

	// Debug runs the per-tensor diagnosis (Inspect) on the final model and
	// adds it to the report; DebugPlot, when set, also draws it to a PNG.
	Debug     bool
	DebugPlot string

	Log io.Writer // progress lines; nil discards them
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
	if o.Weights == "" {
		o.Weights = WeightsAuto
	}
	if o.EqualizeStrength == 0 {
		o.EqualizeStrength = DefaultEqualizeStrength
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
	if o.DebugPlot != "" {
		o.Debug = true
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
	case o.Budget.Kind == APDropBudget && o.Labels == "":
		return errors.New("quantize: --max-ap-drop needs labelled data (--labels)")
	case o.CalibImages < 0 || o.EvalImages < 0 || o.BenchRuns < 0 || o.MaxFloatLayers < 0 || o.Threads < 0 || o.LabelImages < 0:
		return errors.New("quantize: image counts, runs, layers and threads must not be negative")
	}
	if err := o.Budget.validate(); err != nil {
		return err
	}
	if _, err := ParseMethod(string(o.Method)); err != nil {
		return err
	}
	if _, err := ParseActivations(string(o.Activations)); err != nil {
		return err
	}
	if _, err := ParseWeightRange(string(o.Weights)); err != nil {
		return err
	}
	if !(o.EqualizeStrength > 0 && o.EqualizeStrength <= 1) {
		return fmt.Errorf("quantize: equalize strength %v, want a value in (0, 1]", o.EqualizeStrength)
	}
	if !(o.Percentile > 0 && o.Percentile <= 100) {
		return fmt.Errorf("quantize: percentile %v, want a value in (0, 100]", o.Percentile)
	}
	for _, p := range []string{o.Out, o.DebugPlot} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(filepath.Dir(p)); err != nil || !st.IsDir() {
			return fmt.Errorf("quantize: output folder %s does not exist", filepath.Dir(p))
		}
	}
	return nil
}
