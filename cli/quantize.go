package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gidedge/gidedge/quantize"
)

func init() { register(newQuantizeCmd) }

// quantizeOptions configures `gidedge quantize`.
type quantizeOptions struct {
	Model, Calib, Out string
	Method            string
	Percentile        float64
	Activations       string
	Weights           string
	PerChannel        bool
	Exclude           []string
	Equalize          bool
	EqualizeStrength  float64
	ActivationAware   bool
	SpeedProbe        bool
	QuantizeTail      bool
	CalibCache        string
	CalibImages       int

	Mean, Std    string // "a,b,c"; empty keeps the model's
	ChannelOrder string
	Resize       string
	PadValue     float32
	PadValueSet  bool
	PixelScale   float32
	PixelSet     bool
	InputSize    string // "WxH"

	Labels         string
	LabelsSplit    string
	LabelImages    int
	MaxAPDrop      float64
	MinCosine      float64
	MaxFloatLayers int

	Report     bool
	JSON       bool
	Debug      bool
	DebugPlot  string
	EvalImages int
	BenchRuns  int
	Threads    int
	Quiet      bool
}

func newQuantizeCmd() *cobra.Command {
	opts := quantizeOptions{Method: string(quantize.DefaultMethod), Percentile: quantize.DefaultPercentile,
		Activations: string(quantize.Uint8), Weights: string(quantize.WeightsAuto), PerChannel: true, Equalize: true, ActivationAware: true, EqualizeStrength: quantize.DefaultEqualizeStrength, CalibImages: quantize.DefaultCalibImages,
		EvalImages: quantize.DefaultEvalImages, BenchRuns: quantize.DefaultBenchRuns}
	cmd := &cobra.Command{
		Use:   "quantize",
		Short: "Quantize a float ONNX detector to INT8 (QDQ) with calibration",
		Long: `Static post-training quantization to the QDQ format (QuantizeLinear /
DequantizeLinear pairs), readable by ONNX Runtime and TensorRT.

Weights are int8 symmetric, per output channel for Conv and Gemm (models older
than opset 13 are upgraded; if that is impossible weights fall back to per-tensor
and a note says why). Activations are per-tensor uint8 asymmetric (the fast path
of ONNX Runtime on x86/ARM CPUs) or int8 symmetric (--activations int8, what
TensorRT wants). Both the inputs and the outputs of each quantized op carry Q/DQ
so ONNX Runtime fuses them into QLinearConv, QLinearAdd and friends.

Calibration runs the float model in ONNX Runtime over the calibration images
with every quantized tensor exposed, collecting fixed-size histograms, then
picks each tensor's range with --method: minmax, percentile (--percentile) or
entropy (KL divergence, TensorRT's method).

Pre-processing comes from the model (gidedge export metadata, or the built-in
NanoDet and UltraFace adapters); for other models give --mean, --std,
--channel-order, --resize, --pad-value and --pixel-scale. The input size comes
from the model (--input-size for models with a dynamic one).

With --labels the report adds COCO mAP of both models; without, models that an
adapter decodes get the int8 model's AP against the float model's own
detections. --max-ap-drop (with labels) or --min-cosine (without) keeps the
layers that make the most quantization error in float until the accuracy budget
holds, says which, why and what it cost in speed, and fails (writing nothing)
when the budget cannot be met.

--debug diagnoses every quantized tensor on the --eval-images: SQNR and cosine
against the float model with the error from upstream and with the layer fed
float inputs, calibrated against observed range, clipping, and the first layer
where the error jumps; --debug-plot FILE.png draws SQNR along the graph.

The output is written only if everything succeeds.`,
		Example: `  gidedge quantize --model nanodet_m_320.onnx --calib data/coco128/images --out nanodet_int8.onnx
  gidedge quantize --model nanodet_m_320.onnx --calib data/coco128 --out nanodet_int8.onnx \
      --labels data/coco128 --report
  gidedge quantize --model model.onnx --calib calib/ --out model_int8.onnx --method entropy \
      --activations int8 --calib-cache calib.json --exclude Sigmoid,Conv_393
  gidedge quantize --model resnet.onnx --calib imgs/ --out resnet_int8.onnx --mean 123.7,116.3,103.5 \
      --std 58.4,57.1,57.4 --min-cosine 0.995 --json
  gidedge quantize --model yolox.onnx --calib data/coco128 --out yolox_int8.onnx --debug --debug-plot sqnr.png`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.PadValueSet = cmd.Flags().Changed("pad-value")
			opts.PixelSet = cmd.Flags().Changed("pixel-scale")
			return runQuantize(cmd.Context(), opts, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Model, "model", "", "float ONNX model to quantize (required)")
	f.StringVar(&opts.Calib, "calib", "", "folder of calibration images (.jpg/.png, searched recursively; a dataset folder works)")
	f.StringVar(&opts.Out, "out", "", "output QDQ ONNX model (required)")
	f.StringVar(&opts.Method, "method", opts.Method, "calibration method: minmax, percentile or entropy")
	f.Float64Var(&opts.Percentile, "percentile", opts.Percentile, "percentage of values the range covers, for --method percentile")
	f.StringVar(&opts.Activations, "activations", opts.Activations, "activation type: uint8 (asymmetric, fast on CPU) or int8 (symmetric, TensorRT)")
	f.StringVar(&opts.Weights, "weights", opts.Weights, "int8 weight grid: auto (7 bits where the CPU's kernels can saturate: x86 without VNNI), full or reduced")
	f.BoolVar(&opts.PerChannel, "per-channel", opts.PerChannel, "per-output-channel weight scales for Conv and Gemm (--per-channel=false for per-tensor)")
	f.StringSliceVar(&opts.Exclude, "exclude", nil, "node names or op types to keep in float (comma-separated)")
	f.BoolVar(&opts.Equalize, "equalize", opts.Equalize, "rescale activation channels (through Conv, Add, Concat, pooling and SiLU) so one 8-bit grid fits them all; the float model computes the same")
	f.Float64Var(&opts.EqualizeStrength, "equalize-strength", opts.EqualizeStrength, "how much of a channel's range moves into the weights that read it, 0 to 1")
	f.BoolVar(&opts.ActivationAware, "activation-aware", opts.ActivationAware, "fit the lower bound of a tensor read only by a LeakyReLU or SiLU to the error after that activation (uint8)")
	f.BoolVar(&opts.SpeedProbe, "speed-probe", opts.SpeedProbe, "time every layer as an 8-bit and a float kernel on this CPU and keep float the clear losers if that speeds up the model (uint8; the output then depends on timing)")
	f.BoolVar(&opts.QuantizeTail, "quantize-tail", false, "also quantize the ops after the last Conv/Gemm (score activations, reshapes, box decoding)")
	f.StringVar(&opts.CalibCache, "calib-cache", "", "JSON file of calibrated ranges: reused when it exists, written otherwise")
	f.IntVar(&opts.CalibImages, "calib-images", opts.CalibImages, "at most this many calibration images (evenly spaced)")
	f.StringVar(&opts.Mean, "mean", "", "per-channel mean in the model's channel order, e.g. 103.53,116.28,123.675")
	f.StringVar(&opts.Std, "std", "", "per-channel std in the model's channel order, e.g. 57.375,57.12,58.395")
	f.StringVar(&opts.ChannelOrder, "channel-order", "", "rgb or bgr")
	f.StringVar(&opts.Resize, "resize", "", "stretch or letterbox")
	f.Float32Var(&opts.PadValue, "pad-value", 0, "letterbox fill in raw pixel units (0-255)")
	f.Float32Var(&opts.PixelScale, "pixel-scale", 0, "raw 0-255 pixel × this before (v-mean)/std (e.g. 0.00392157 for 0-1 input)")
	f.StringVar(&opts.InputSize, "input-size", "", "WxH for models whose input size is dynamic")
	f.StringVar(&opts.Labels, "labels", "", "labelled VOC or COCO dataset folder: the report adds mAP")
	f.StringVar(&opts.LabelsSplit, "labels-split", "", "split of --labels (VOC: ImageSets/Main/<split>.txt; COCO: instances_<split>.json)")
	f.IntVar(&opts.LabelImages, "label-images", 0, "at most this many labelled images (0 = all)")
	f.Float64Var(&opts.MaxAPDrop, "max-ap-drop", 0, "accuracy budget in AP points (needs --labels): keep sensitive layers float until it holds")
	f.Float64Var(&opts.MinCosine, "min-cosine", 0, "accuracy budget without labels: smallest output cosine similarity to keep")
	f.IntVar(&opts.MaxFloatLayers, "max-float-layers", 0, "at most this many layers the fallback may keep float (0: no cap)")
	f.BoolVar(&opts.Report, "report", false, "also time both models and list the ops ONNX Runtime runs in 8 bits")
	f.BoolVar(&opts.JSON, "json", false, "print the report as one JSON object (implies --report)")
	f.BoolVar(&opts.Debug, "debug", false, "diagnose every quantized tensor against the float model (table, or \"debug\" in --json)")
	f.StringVar(&opts.DebugPlot, "debug-plot", "", "with --debug: draw SQNR along the graph to this PNG (or .svg/.pdf)")
	f.IntVar(&opts.EvalImages, "eval-images", opts.EvalImages, "calibration images the cosine comparison and fallback ranking use")
	f.IntVar(&opts.BenchRuns, "bench-runs", opts.BenchRuns, "timed runs per model for the latency report")
	f.IntVar(&opts.Threads, "threads", 0, "ONNX Runtime intra-op threads (0 lets it choose)")
	f.BoolVarP(&opts.Quiet, "quiet", "q", false, "no progress lines on stderr")
	return cmd
}

// runQuantize runs `gidedge quantize` with parsed options.
func runQuantize(ctx context.Context, opts quantizeOptions, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	method, err := quantize.ParseMethod(opts.Method)
	if err != nil {
		return err
	}
	act, err := quantize.ParseActivations(opts.Activations)
	if err != nil {
		return err
	}
	weights, err := quantize.ParseWeightRange(opts.Weights)
	if err != nil {
		return err
	}
	var budget quantize.Budget
	switch {
	case opts.MaxAPDrop != 0 && opts.MinCosine != 0:
		return fmt.Errorf("quantize: give one fallback budget, --max-ap-drop or --min-cosine, not both")
	case opts.MaxAPDrop != 0:
		budget = quantize.MaxAPDrop(opts.MaxAPDrop)
	case opts.MinCosine != 0:
		budget = quantize.MinCosine(opts.MinCosine)
	}
	pre := quantize.PreprocessOverride{ChannelOrder: strings.ToLower(opts.ChannelOrder), Resize: strings.ToLower(opts.Resize)}
	if opts.Mean != "" {
		v, err := parseTriple("mean", opts.Mean)
		if err != nil {
			return err
		}
		pre.Mean = &v
	}
	if opts.Std != "" {
		v, err := parseTriple("std", opts.Std)
		if err != nil {
			return err
		}
		pre.Std = &v
	}
	if opts.PadValueSet {
		pre.PadValue = &opts.PadValue
	}
	if opts.PixelSet {
		pre.PixelScale = &opts.PixelScale
	}
	if opts.InputSize != "" {
		w, h, ok := strings.Cut(strings.ToLower(opts.InputSize), "x")
		wi, err1 := strconv.Atoi(w)
		hi, err2 := strconv.Atoi(h)
		if !ok || err1 != nil || err2 != nil || wi <= 0 || hi <= 0 {
			return fmt.Errorf("quantize: --input-size %q, want WxH such as 320x320", opts.InputSize)
		}
		pre.Width, pre.Height = wi, hi
	}
	var log io.Writer = stderr
	if opts.Quiet {
		log = nil
	}
	rep, err := quantize.Run(ctx, quantize.Options{
		Model: opts.Model, Out: opts.Out, Calib: opts.Calib, CalibImages: opts.CalibImages,
		Method: method, Percentile: opts.Percentile, Activations: act, Weights: weights, PerTensor: !opts.PerChannel,
		Exclude: opts.Exclude, NoEqualize: !opts.Equalize, NoActivationAware: !opts.ActivationAware, SpeedProbe: opts.SpeedProbe, EqualizeStrength: opts.EqualizeStrength, QuantizeTail: opts.QuantizeTail, CalibCache: opts.CalibCache, Preprocess: pre,
		Labels: opts.Labels, LabelsSplit: opts.LabelsSplit, LabelImages: opts.LabelImages,
		Budget: budget, MaxFloatLayers: opts.MaxFloatLayers,
		Report: opts.Report || opts.JSON, EvalImages: opts.EvalImages, BenchRuns: opts.BenchRuns,
		Debug: opts.Debug || opts.DebugPlot != "", DebugPlot: opts.DebugPlot,
		Threads: opts.Threads, Log: log,
	})
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.WriteText(stdout)
}

func parseTriple(flag, s string) ([3]float32, error) {
	var out [3]float32
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return out, fmt.Errorf("quantize: --%s %q, want three comma-separated numbers", flag, s)
	}
	for i, p := range parts {
		v, err := strconv.ParseFloat(strings.TrimSpace(p), 32)
		if err != nil {
			return out, fmt.Errorf("quantize: --%s %q: value %d: %w", flag, s, i+1, err)
		}
		out[i] = float32(v)
	}
	return out, nil
}
