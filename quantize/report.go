package quantize

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/hostinfo"
	"github.com/gidedge/gidedge/internal/human"
)

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
	// APvsFP32 is COCO AP (percent) of this model's detections scored
	// against the float model's own confident detections as ground truth:
	// how faithfully it reproduces the float model, no labels needed.
	APvsFP32 *float64 `json:"ap_vs_fp32,omitempty"`
}

// Host is the machine the report was measured on, with what decides how
// ONNX Runtime runs 8-bit kernels there.
type Host struct {
	CPU    string `json:"cpu"`
	Arch   string `json:"arch"`
	Cores  int    `json:"cores"`
	AVX512 bool   `json:"avx512"`
	VNNI   bool   `json:"vnni"`
	// Int8Path names the kernel family: avx512-vnni, avx-vnni, avx2 (may
	// saturate), arm64 dotprod, arm64 neon or generic.
	Int8Path string `json:"int8_path"`
	// Load is the load average when the run started.
	Load string `json:"load_average,omitempty"`
}

func hostOf(c hostinfo.CPU) Host {
	return Host{CPU: c.Model, Arch: c.Arch, Cores: c.Cores, AVX512: c.AVX512(), VNNI: c.VNNI(), Int8Path: c.Int8Path(), Load: hostinfo.LoadAverage()}
}

// Report is what Run did and measured.
type Report struct {
	Model       string           `json:"model"`
	Out         string           `json:"out"`
	Host        Host             `json:"host"`
	Method      Method           `json:"method"`
	Percentile  float64          `json:"percentile,omitempty"`
	Activations Activations      `json:"activations"`
	Weights     WeightRange      `json:"weights"`
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
	// Fallback details the sensitive-layer search when a budget was given.
	Fallback *FallbackReport `json:"fallback,omitempty"`

	FP32 ModelStats `json:"fp32"`
	INT8 ModelStats `json:"int8"`
	// FP32Prepared is the float model after the same clean-up quantization
	// starts from (folded BN, upgraded opset): the fair float baseline.
	FP32Prepared *ModelStats `json:"fp32_prepared,omitempty"`

	Cosine    map[string]float64 `json:"cosine,omitempty"`
	CosineMin float64            `json:"cosine_min,omitempty"`
	APDrop    *float64           `json:"ap_drop,omitempty"`
	// Speedup is fp32 file / int8 wall time; SpeedupClean is clean fp32 /
	// int8 process CPU time, the fair comparison.
	Speedup      float64 `json:"speedup,omitempty"`
	SpeedupClean float64 `json:"speedup_clean,omitempty"`
	// ORTOps counts the op types ONNX Runtime runs for the int8 model after
	// its QDQ fusions (QLinearConv, QLinearAdd, …): what really runs in 8 bits.
	ORTOps map[string]int `json:"ort_ops,omitempty"`

	// LayerSpeed is the speed probe's timing of every weighted layer.
	LayerSpeed []LayerSpeed `json:"layer_speed,omitempty"`

	// Debug is the per-tensor diagnosis (Options.Debug).
	Debug *Inspection `json:"debug,omitempty"`
}

// WriteText prints a report for people.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "quantized %s -> %s\n", r.Model, r.Out)
	fmt.Fprintf(&b, "  host: %s (%s, %d cores), int8 kernels: %s\n", r.Host.CPU, r.Host.Arch, r.Host.Cores, r.Host.Int8Path)
	pct := ""
	if r.Method == Percentile {
		pct = fmt.Sprintf(" %v%%", r.Percentile)
	}
	weights := "per-channel"
	if !r.PerChannel {
		weights = "per-tensor"
	}
	bits := "8-bit"
	if r.Weights == WeightsReduced {
		bits = "7-bit (reduced range)"
	}
	fmt.Fprintf(&b, "  calibration: %s%s on %d images; activations %s, weights %s int8 %s\n", r.Method, pct, r.CalibImages, r.Activations, bits, weights)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	fmt.Fprintf(&b, "  quantized ops: %s", human.Counts(r.QuantizedOps, "%s %d"))
	if r.Absorbed > 0 {
		fmt.Fprintf(&b, " (+%d ReLU/Clip absorbed into the uint8 range)", r.Absorbed)
	}
	b.WriteString("\n")
	if len(r.FloatOps) > 0 {
		fmt.Fprintf(&b, "  left in float: %s\n", human.Counts(r.FloatOps, "%s %d"))
	}
	if f := r.Fallback; f != nil {
		f.writeText(&b)
	}
	if len(r.ORTOps) > 0 {
		fmt.Fprintf(&b, "  ONNX Runtime runs: %s\n", human.Counts(r.ORTOps, "%s %d"))
	}
	fmt.Fprintf(&b, "  %-14s %12s %12s\n", "", "fp32", "int8")
	fmt.Fprintf(&b, "  %-14s %12s %12s\n", "size", human.Bytes(r.FP32.SizeBytes), human.Bytes(r.INT8.SizeBytes))
	if r.FP32.LatencyMs > 0 {
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f   (%.2fx; fp32 after clean-up %.2f ms)\n", "latency ms", r.FP32.LatencyMs, r.INT8.LatencyMs, r.Speedup, r.FP32Prepared.LatencyMs)
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f\n", "latency p99 ms", r.FP32.LatencyP99Ms, r.INT8.LatencyP99Ms)
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f   (%.2fx; against the clean fp32 graph %.2f ms: %.2fx)\n", "cpu ms/run",
			r.FP32.CPUMs, r.INT8.CPUMs, r.FP32.CPUMs/r.INT8.CPUMs, r.FP32Prepared.CPUMs, r.SpeedupClean)
	}
	if r.FP32.AP != nil && r.INT8.AP != nil {
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f   (drop %.2f)\n", "AP", *r.FP32.AP, *r.INT8.AP, *r.APDrop)
		fmt.Fprintf(&b, "  %-14s %12.2f %12.2f\n", "AP50", *r.FP32.AP50, *r.INT8.AP50)
	}
	if r.INT8.APvsFP32 != nil {
		fmt.Fprintf(&b, "  %-14s %12s %12.2f   (int8 detections scored against fp32's own)\n", "AP vs fp32", "100", *r.INT8.APvsFP32)
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
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	if r.Debug != nil {
		return r.Debug.WriteText(w)
	}
	return nil
}
