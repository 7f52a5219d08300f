package models

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/gidedge/gidedge/engine/nn"
)

// Head families.
const (
	FamilyRetinaNet = "retinanet"
	FamilyFCOS      = "fcos"
)

// Backbone types.
const (
	BackboneResNet      = "resnet"
	BackboneMobileNetV2 = "mobilenetv2"
)

// Box losses.
const (
	BoxLossSmoothL1 = "smooth_l1"
	BoxLossGIoU     = "giou"
)

// ErrUnknownConfig is returned by Resolve for a name that is neither an
// embedded config nor a readable file.
var ErrUnknownConfig = errors.New("models: unknown config")

// Config describes a detector completely: architecture, assignment, loss,
// postprocessing and default training hyper-parameters. It is saved in every
// run folder and checkpoint, so a checkpoint rebuilds its own model.
type Config struct {
	Name string `json:"name"`
	// Family is "retinanet" or "fcos".
	Family string `json:"family"`
	// NumClasses is K. Zero in a named config means "take it from the
	// training data"; a built detector always has it set.
	NumClasses int `json:"num_classes"`
	// ClassNames, when set, has NumClasses entries in class-index order.
	ClassNames  []string          `json:"class_names,omitempty"`
	Input       InputConfig       `json:"input"`
	Backbone    BackboneConfig    `json:"backbone"`
	FPN         FPNConfig         `json:"fpn"`
	Head        HeadConfig        `json:"head"`
	Anchors     AnchorConfig      `json:"anchors"`
	Assigner    AssignerConfig    `json:"assigner"`
	Loss        LossConfig        `json:"loss"`
	Postprocess PostprocessConfig `json:"postprocess"`
	Train       TrainConfig       `json:"train"`
}

// InputConfig says how images are fed to the network: resized to Size×Size
// ("letterbox": aspect kept, borders filled with PadValue; or "stretch"),
// RGB, raw 0–255 pixel values times 1/255, then (v − Mean[c]) / Std[c].
type InputConfig struct {
	// Size is the default square training and inference size in pixels;
	// it must be a multiple of 32, the largest backbone stride.
	Size     int        `json:"size"`
	Resize   string     `json:"resize"`
	PadValue float32    `json:"pad_value"`
	Mean     [3]float32 `json:"mean"`
	Std      [3]float32 `json:"std"`
}

// Resize modes of InputConfig.
const (
	ResizeLetterbox = "letterbox"
	ResizeStretch   = "stretch"
)

// BackboneConfig is a stem of stride-2 3×3 convolutions followed by stages.
// The last stage output at each of strides 8, 16 and 32 becomes C3, C4, C5.
type BackboneConfig struct {
	// Type is "resnet" (basic residual blocks) or "mobilenetv2" (inverted
	// residual blocks with depthwise 3×3 convolutions).
	Type string `json:"type"`
	// Stem lists the output widths of the stem convolutions, each 3×3 stride 2.
	Stem   []int         `json:"stem"`
	Stages []StageConfig `json:"stages"`
	// Act is the activation (relu, relu6, leaky_relu, silu, hardswish).
	Act nn.Activation `json:"act"`
}

// StageConfig is a run of Depth blocks with Out channels; the first block
// has the given Stride (1 or 2). Expand is MobileNetV2's expansion ratio
// (ignored by ResNet).
type StageConfig struct {
	Out    int `json:"out"`
	Depth  int `json:"depth"`
	Stride int `json:"stride"`
	Expand int `json:"expand,omitempty"`
}

// FPNConfig is the feature pyramid. Levels are pyramid indices (3 = stride 8)
// in increasing order, from 3 to 5, 6 or 7; P6 and P7 are made from P5 by
// stride-2 convolutions.
type FPNConfig struct {
	Channels int   `json:"channels"`
	Levels   []int `json:"levels"`
	// Depthwise makes the 3×3 output convolutions depthwise separable.
	Depthwise bool `json:"depthwise,omitempty"`
}

// HeadConfig is the classification and regression towers shared by every
// level: Convs convolutions of Channels each (weights shared across levels,
// batch norm per level), then the output convolutions.
type HeadConfig struct {
	Convs    int `json:"convs"`
	Channels int `json:"channels"`
	// Depthwise makes each tower convolution a depthwise 3×3 plus a
	// pointwise 1×1 (edge students).
	Depthwise bool          `json:"depthwise,omitempty"`
	Act       nn.Activation `json:"act"`
	// PriorProb sets the classification bias so every score starts at this
	// probability (RetinaNet's 0.01).
	PriorProb float64 `json:"prior_prob"`
}

// AnchorConfig gives RetinaNet's anchors: per level a base size, and at
// every position one anchor per (ratio, scale) pair, ratio-major: anchor
// a = ratioIndex·len(Scales) + scaleIndex, with width s·scale/√ratio and
// height s·scale·√ratio (ratio = height/width).
type AnchorConfig struct {
	Sizes  []float32 `json:"sizes,omitempty"`
	Ratios []float32 `json:"ratios,omitempty"`
	Scales []float32 `json:"scales,omitempty"`
}

// AssignerConfig holds both families' assignment rules.
type AssignerConfig struct {
	// RetinaNet: an anchor is positive when its best IoU with a ground-truth
	// box is ≥ PosIoU, negative below NegIoU, ignored in between; with
	// LowQuality each ground truth also claims the anchors of its highest IoU.
	PosIoU     float32 `json:"pos_iou,omitempty"`
	NegIoU     float32 `json:"neg_iou,omitempty"`
	LowQuality bool    `json:"low_quality,omitempty"`
	// FCOS: a point is positive for a box when it lies inside the box (and,
	// with CenterRadius > 0, within CenterRadius strides of its centre) and
	// its largest ltrb distance falls in its level's SizeRanges entry; among
	// several boxes the smallest wins.
	CenterRadius float32      `json:"center_radius,omitempty"`
	SizeRanges   [][2]float32 `json:"size_ranges,omitempty"`
}

// LossConfig weights and shapes the detector losses.
type LossConfig struct {
	FocalAlpha float32 `json:"focal_alpha"`
	FocalGamma float32 `json:"focal_gamma"`
	// Box is "smooth_l1" (on encoded deltas, RetinaNet only) or "giou".
	Box          string  `json:"box"`
	SmoothL1Beta float32 `json:"smooth_l1_beta,omitempty"`
	BoxWeight    float32 `json:"box_weight"`
	// BoxCoderWeights scale RetinaNet's (dx, dy, dw, dh) deltas.
	BoxCoderWeights [4]float32 `json:"box_coder_weights,omitempty"`
}

// PostprocessConfig turns head outputs into detections.
type PostprocessConfig struct {
	ScoreThreshold float32 `json:"score_threshold"`
	TopKPerLevel   int     `json:"topk_per_level"`
	NMSIoU         float32 `json:"nms_iou"`
	MaxDetections  int     `json:"max_detections"`
}

// TrainConfig holds the default hyper-parameters of package train; command
// line flags override them.
type TrainConfig struct {
	// Optimizer is "sgd" or "adamw".
	Optimizer   string  `json:"optimizer"`
	LR          float64 `json:"lr"`
	Momentum    float64 `json:"momentum,omitempty"`
	WeightDecay float64 `json:"weight_decay"`
	// WarmupSteps ramps the learning rate linearly from WarmupFactor·LR.
	WarmupSteps  int     `json:"warmup_steps"`
	WarmupFactor float64 `json:"warmup_factor"`
	// Schedule is "cosine" or "step" (×0.1 at 2/3 and 8/9 of training).
	Schedule string  `json:"schedule"`
	Epochs   int     `json:"epochs"`
	Batch    int     `json:"batch"`
	GradClip float64 `json:"grad_clip,omitempty"`
	// Augment enables horizontal flip, scale/crop and colour jitter.
	Augment bool `json:"augment"`
}

//go:embed configs/*.json
var configFS embed.FS

// Names lists the embedded config names, sorted.
func Names() []string {
	entries, err := fs.ReadDir(configFS, "configs")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			names = append(names, strings.TrimSuffix(e.Name(), ".json"))
		}
	}
	sort.Strings(names)
	return names
}

// Named returns an embedded config by name (e.g. "retinanet-student").
func Named(name string) (Config, error) {
	data, err := configFS.ReadFile(path.Join("configs", name+".json"))
	if err != nil {
		return Config{}, fmt.Errorf("%w %q, known configs are %s", ErrUnknownConfig, name, strings.Join(Names(), ", "))
	}
	return ParseConfig(data, "embedded config "+name)
}

// Resolve returns the embedded config called nameOrPath, or else reads the
// JSON file at that path.
func Resolve(nameOrPath string) (Config, error) {
	if slices.Contains(Names(), nameOrPath) {
		return Named(nameOrPath)
	}
	data, err := os.ReadFile(nameOrPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Config{}, fmt.Errorf("%w %q: not an embedded config (%s) and no such file", ErrUnknownConfig, nameOrPath, strings.Join(Names(), ", "))
		}
		return Config{}, fmt.Errorf("models: read config: %w", err)
	}
	return ParseConfig(data, nameOrPath)
}

// ParseConfig decodes and validates a JSON config; unknown fields are errors
// so a typo does not silently fall back to a default. where names the
// source in errors.
func ParseConfig(data []byte, where string) (Config, error) {
	var c Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("models: %s: %w", where, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("models: %s: %w", where, err)
	}
	return c, nil
}

// JSON returns the config as indented JSON.
func (c Config) JSON() []byte {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(err) // a Config always marshals
	}
	return b
}

// WithClasses returns c set up for the given class names.
func (c Config) WithClasses(names []string) Config {
	c.NumClasses = len(names)
	c.ClassNames = slices.Clone(names)
	return c
}

// Strides returns the stride of every FPN level, finest first.
func (c Config) Strides() []int {
	s := make([]int, len(c.FPN.Levels))
	for i, l := range c.FPN.Levels {
		s[i] = 1 << l
	}
	return s
}

// NumAnchors is A, the anchors per position (1 for FCOS).
func (c Config) NumAnchors() int {
	if c.Family == FamilyFCOS {
		return 1
	}
	return len(c.Anchors.Ratios) * len(c.Anchors.Scales)
}

// Validate reports the first field that cannot build a detector. A zero
// NumClasses is allowed (filled from data later); a built detector requires
// it to be positive.
func (c Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if c.Name == "" {
		bad("name is empty")
	}
	if c.Family != FamilyRetinaNet && c.Family != FamilyFCOS {
		bad("family %q, want %q or %q", c.Family, FamilyRetinaNet, FamilyFCOS)
	}
	if c.NumClasses < 0 {
		bad("num_classes %d is negative", c.NumClasses)
	}
	if len(c.ClassNames) > 0 && len(c.ClassNames) != c.NumClasses {
		bad("class_names has %d names, num_classes is %d", len(c.ClassNames), c.NumClasses)
	}
	for i := 0; i < 3; i++ {
		if !(c.Input.Std[i] > 0) {
			bad("input.std[%d] = %v, want > 0", i, c.Input.Std[i])
		}
	}
	if c.Input.Resize != ResizeLetterbox && c.Input.Resize != ResizeStretch {
		bad("input.resize %q, want %q or %q", c.Input.Resize, ResizeLetterbox, ResizeStretch)
	}
	if c.Input.PadValue < 0 || c.Input.PadValue > 255 {
		bad("input.pad_value %v, want a raw pixel value in [0, 255]", c.Input.PadValue)
	}
	if c.Input.Size <= 0 || c.Input.Size%32 != 0 {
		bad("input.size %d, want a positive multiple of 32", c.Input.Size)
	}
	c.validateBackbone(bad)
	levels := c.FPN.Levels
	if len(levels) == 0 || levels[0] != 3 {
		bad("fpn.levels %v, want consecutive levels starting at 3 (e.g. [3,4,5])", levels)
	}
	for i, l := range levels {
		if l != 3+i || l > 7 {
			bad("fpn.levels %v, want consecutive levels from 3 up to at most 7", levels)
			break
		}
	}
	if len(levels) < 3 {
		bad("fpn.levels %v, want at least P3–P5", levels)
	}
	if c.FPN.Channels <= 0 {
		bad("fpn.channels %d, want > 0", c.FPN.Channels)
	}
	if c.Head.Convs < 0 || c.Head.Channels <= 0 {
		bad("head.convs %d and head.channels %d, want convs ≥ 0 and channels > 0", c.Head.Convs, c.Head.Channels)
	}
	if !validAct(c.Head.Act) {
		bad("head.act %q is not a known activation", c.Head.Act)
	}
	if !(c.Head.PriorProb > 0 && c.Head.PriorProb < 1) {
		bad("head.prior_prob %v, want in (0, 1)", c.Head.PriorProb)
	}
	switch c.Family {
	case FamilyRetinaNet:
		a := c.Anchors
		if len(a.Sizes) != len(levels) {
			bad("anchors.sizes has %d entries for %d fpn levels", len(a.Sizes), len(levels))
		}
		if len(a.Ratios) == 0 || len(a.Scales) == 0 {
			bad("anchors.ratios and anchors.scales must not be empty")
		}
		for _, v := range slices.Concat(a.Sizes, a.Ratios, a.Scales) {
			if !(v > 0) {
				bad("anchors values must be positive, got %v", v)
				break
			}
		}
		s := c.Assigner
		if !(s.NegIoU > 0 && s.NegIoU <= s.PosIoU && s.PosIoU <= 1) {
			bad("assigner.neg_iou %v and pos_iou %v, want 0 < neg ≤ pos ≤ 1", s.NegIoU, s.PosIoU)
		}
		if c.Loss.Box != BoxLossSmoothL1 && c.Loss.Box != BoxLossGIoU {
			bad("loss.box %q, want %q or %q", c.Loss.Box, BoxLossSmoothL1, BoxLossGIoU)
		}
		for i, w := range c.Loss.BoxCoderWeights {
			if !(w > 0) {
				bad("loss.box_coder_weights[%d] = %v, want > 0", i, w)
			}
		}
	case FamilyFCOS:
		if len(c.Assigner.SizeRanges) != len(levels) {
			bad("assigner.size_ranges has %d entries for %d fpn levels", len(c.Assigner.SizeRanges), len(levels))
		}
		for i, r := range c.Assigner.SizeRanges {
			if !(r[0] >= 0 && r[1] > r[0]) {
				bad("assigner.size_ranges[%d] = %v, want 0 ≤ lo < hi", i, r)
			}
		}
		if c.Assigner.CenterRadius < 0 {
			bad("assigner.center_radius %v is negative", c.Assigner.CenterRadius)
		}
		if c.Loss.Box != BoxLossGIoU {
			bad("loss.box %q, FCOS regresses distances with %q", c.Loss.Box, BoxLossGIoU)
		}
	}
	if c.Loss.FocalGamma < 0 || c.Loss.FocalAlpha > 1 {
		bad("loss.focal_gamma %v and focal_alpha %v, want gamma ≥ 0 and alpha ≤ 1 (negative alpha disables it)", c.Loss.FocalGamma, c.Loss.FocalAlpha)
	}
	if !(c.Loss.BoxWeight > 0) {
		bad("loss.box_weight %v, want > 0", c.Loss.BoxWeight)
	}
	if c.Loss.Box == BoxLossSmoothL1 && c.Loss.SmoothL1Beta < 0 {
		bad("loss.smooth_l1_beta %v is negative", c.Loss.SmoothL1Beta)
	}
	p := c.Postprocess
	if p.ScoreThreshold < 0 || p.ScoreThreshold >= 1 || p.TopKPerLevel <= 0 || !(p.NMSIoU > 0 && p.NMSIoU <= 1) || p.MaxDetections <= 0 {
		bad("postprocess %+v, want 0 ≤ score_threshold < 1, topk_per_level > 0, 0 < nms_iou ≤ 1, max_detections > 0", p)
	}
	t := c.Train
	if t.Optimizer != "sgd" && t.Optimizer != "adamw" {
		bad("train.optimizer %q, want \"sgd\" or \"adamw\"", t.Optimizer)
	}
	if t.Schedule != "cosine" && t.Schedule != "step" {
		bad("train.schedule %q, want \"cosine\" or \"step\"", t.Schedule)
	}
	if !(t.LR > 0) || t.Epochs <= 0 || t.Batch <= 0 || t.WarmupSteps < 0 || t.WeightDecay < 0 || math.IsNaN(t.GradClip) {
		bad("train %+v, want lr > 0, epochs > 0, batch > 0, warmup_steps ≥ 0, weight_decay ≥ 0", t)
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

func (c Config) validateBackbone(bad func(string, ...any)) {
	b := c.Backbone
	if b.Type != BackboneResNet && b.Type != BackboneMobileNetV2 {
		bad("backbone.type %q, want %q or %q", b.Type, BackboneResNet, BackboneMobileNetV2)
	}
	if !validAct(b.Act) {
		bad("backbone.act %q is not a known activation", b.Act)
	}
	if len(b.Stem) == 0 {
		bad("backbone.stem is empty, want at least one stride-2 convolution width")
	}
	for i, w := range b.Stem {
		if w <= 0 {
			bad("backbone.stem[%d] = %d, want > 0", i, w)
		}
	}
	stride := 1 << len(b.Stem)
	seen := map[int]bool{}
	for i, s := range b.Stages {
		if s.Out <= 0 || s.Depth <= 0 || (s.Stride != 1 && s.Stride != 2) {
			bad("backbone.stages[%d] = %+v, want out > 0, depth > 0, stride 1 or 2", i, s)
		}
		if b.Type == BackboneMobileNetV2 && s.Expand <= 0 {
			bad("backbone.stages[%d].expand = %d, want ≥ 1 for mobilenetv2", i, s.Expand)
		}
		if s.Stride == 2 {
			stride *= 2
		}
		seen[stride] = true
	}
	for _, want := range []int{8, 16, 32} {
		if !seen[want] {
			bad("backbone stages never produce stride %d (stem gives stride %d; stages %v)", want, 1<<len(b.Stem), b.Stages)
		}
	}
	if stride != 32 {
		bad("backbone ends at stride %d, want 32", stride)
	}
}

func validAct(a nn.Activation) bool {
	switch a {
	case nn.ActNone, nn.ActReLU, nn.ActReLU6, nn.ActLeakyReLU, nn.ActSiLU, nn.ActHardSwish:
		return true
	}
	return false
}
