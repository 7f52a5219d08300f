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
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gidedge/gidedge/engine/nn"
)

// Head families.
const (
	FamilyRetinaNet = "retinanet"
	FamilyFCOS      = "fcos"
	// FamilyFasterRCNN is the two-stage family: a region proposal network
	// (RPN) on the pyramid, then a box head on ROIAlign features of its
	// proposals. Its config adds the rpn and roi_head sections.
	FamilyFasterRCNN = "faster_rcnn"
)

// Backbone types.
const (
	BackboneResNet      = "resnet"
	BackboneMobileNetV2 = "mobilenetv2"
	// BackboneImported is a graph made by `gidedge import` (BackboneConfig.Graph).
	BackboneImported = "imported"
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
	// Family is "retinanet", "fcos" or "faster_rcnn".
	Family string `json:"family"`
	// NumClasses is K. Zero in a named config means "take it from the
	// training data"; a built detector always has it set.
	NumClasses int `json:"num_classes"`
	// ClassNames, when set, has NumClasses entries in class-index order.
	ClassNames []string       `json:"class_names,omitempty"`
	Input      InputConfig    `json:"input"`
	Backbone   BackboneConfig `json:"backbone"`
	// Neck, when set, is an imported graph that makes P3–P5 from the
	// backbone's C3–C5 in place of the FPN's laterals and output blocks
	// (fpn.channels must be its output width; fpn.levels beyond 5 still
	// add P6/P7).
	Neck        *GraphConfig      `json:"neck,omitempty"`
	FPN         FPNConfig         `json:"fpn"`
	Head        HeadConfig        `json:"head"`
	Anchors     AnchorConfig      `json:"anchors"`
	Assigner    AssignerConfig    `json:"assigner"`
	Loss        LossConfig        `json:"loss"`
	Postprocess PostprocessConfig `json:"postprocess"`
	Train       TrainConfig       `json:"train"`
	// Pretrained is a checkpoint whose tensors initialise a fresh
	// detector's parameters of the same names (LoadPretrained): what
	// `gidedge import` writes for an imported backbone and neck. A
	// relative path is relative to the config file (Resolve makes it
	// absolute).
	Pretrained string `json:"pretrained,omitempty"`
	// RPN and ROIHead configure the two stages of FamilyFasterRCNN (and
	// must be absent for the one-stage families).
	RPN     *RPNConfig     `json:"rpn,omitempty"`
	ROIHead *ROIHeadConfig `json:"roi_head,omitempty"`
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
	// Type is "resnet" (basic residual blocks), "mobilenetv2" (inverted
	// residual blocks with depthwise 3×3 convolutions) or "imported" (Graph).
	Type string `json:"type"`
	// Stem lists the output widths of the stem convolutions, each 3×3 stride 2.
	Stem   []int         `json:"stem,omitempty"`
	Stages []StageConfig `json:"stages,omitempty"`
	// Act is the activation (relu, relu6, leaky_relu, silu, hardswish).
	Act nn.Activation `json:"act,omitempty"`
	// Graph is an imported backbone: one input (the image), three outputs
	// at strides 8, 16 and 32. Stem, Stages and Act are unused.
	Graph *GraphConfig `json:"graph,omitempty"`
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

// RPNConfig is the region proposal network of the two-stage family: how it
// samples anchors for its loss and turns its outputs into proposals. Its
// other settings come from the shared sections: the anchors, the assigner
// (IoU thresholds, typically 0.7 and 0.3 with low-quality matches), the
// head (its shared 3×3 tower) and the loss (box loss, smooth-L1 β, box
// weight and box-coder weights of its deltas).
type RPNConfig struct {
	// BatchPerImage anchors are sampled per image for the loss, at most
	// PositiveFraction of them positive; the rest are negatives.
	BatchPerImage    int     `json:"batch_per_image"`
	PositiveFraction float32 `json:"positive_fraction"`
	// PreNMSTopK* are the best-scoring anchors kept per pyramid level
	// before NMS, PostNMSTopK* the proposals kept per image after it, for
	// training and for inference.
	PreNMSTopKTrain  int `json:"pre_nms_topk_train"`
	PreNMSTopKTest   int `json:"pre_nms_topk_test"`
	PostNMSTopKTrain int `json:"post_nms_topk_train"`
	PostNMSTopKTest  int `json:"post_nms_topk_test"`
	// NMSIoU is the IoU above which a proposal suppresses a lower-scoring
	// one of the same level.
	NMSIoU float32 `json:"nms_iou"`
	// MinSize drops proposals whose width or height is not above it
	// (pixels, after clipping to the input).
	MinSize float32 `json:"min_size"`
}

// ROIHeadConfig is the second stage of the two-stage family: ROIAlign of
// each region onto one pyramid level, two fully connected layers, class
// logits (K classes plus background) and class-specific box deltas.
type ROIHeadConfig struct {
	// PoolSize is the side of the ROIAlign output; SamplingRatio its
	// bilinear samples per bin and axis (0: adaptive, ⌈region / PoolSize⌉).
	PoolSize      int `json:"pool_size"`
	SamplingRatio int `json:"sampling_ratio"`
	// A region of size √(wh) = CanonicalSize pixels is pooled from pyramid
	// level CanonicalLevel; each doubling of its size moves it one level
	// up (FPN's level rule, clamped to the pyramid).
	CanonicalLevel int     `json:"canonical_level"`
	CanonicalSize  float32 `json:"canonical_size"`
	// FCDim is the width of both fully connected layers.
	FCDim int `json:"fc_dim"`
	// BatchPerImage regions are sampled per image for the loss, at most
	// PositiveFraction of them foreground (IoU ≥ FgIoU with a ground-truth
	// box); the ground-truth boxes join the proposals first.
	BatchPerImage    int     `json:"batch_per_image"`
	PositiveFraction float32 `json:"positive_fraction"`
	FgIoU            float32 `json:"fg_iou"`
	// BoxCoderWeights scale the (dx, dy, dw, dh) deltas of the regions.
	BoxCoderWeights [4]float32 `json:"box_coder_weights"`
	// SmoothL1Beta is β of the box loss (0: L1); BoxWeight weighs it.
	SmoothL1Beta float32 `json:"smooth_l1_beta"`
	BoxWeight    float32 `json:"box_weight"`
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
	c, err := ParseConfig(data, nameOrPath)
	if err != nil {
		return Config{}, err
	}
	if c.Pretrained != "" && !filepath.IsAbs(c.Pretrained) {
		abs, err := filepath.Abs(filepath.Join(filepath.Dir(nameOrPath), c.Pretrained))
		if err != nil {
			return Config{}, fmt.Errorf("models: %s: pretrained %q: %w", nameOrPath, c.Pretrained, err)
		}
		c.Pretrained = abs
	}
	return c, nil
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

// TwoStage reports whether the config is the two-stage family.
func (c Config) TwoStage() bool { return c.Family == FamilyFasterRCNN }

// HeadClasses is the number of class channels per anchor of the dense head
// (Outputs.ClsLogits): K for the one-stage families, 1 (objectness) for
// the two-stage family's RPN.
func (c Config) HeadClasses() int {
	if c.TwoStage() {
		return 1
	}
	return c.NumClasses
}

// NumAnchors is A, the anchors per position (1 for FCOS).
func (c Config) NumAnchors() int {
	if c.Family == FamilyFCOS {
		return 1
	}
	return len(c.Anchors.Ratios) * len(c.Anchors.Scales)
}

// FieldError is one config field that cannot build a detector: its JSON
// path, the value found and what was wanted.
type FieldError struct {
	Field string // JSON path, e.g. "input.size" or "backbone.stages[2]"
	Value any    // the value the config has
	Want  string // what would be accepted
}

func (e *FieldError) Error() string {
	v := e.Value
	if s, ok := v.(string); ok {
		v = strconv.Quote(s)
	} else if a, ok := v.(nn.Activation); ok {
		v = strconv.Quote(string(a))
	}
	return fmt.Sprintf("%s %v, want %s", e.Field, v, e.Want)
}

// Validate checks every field and returns nil or the errors.Join of one
// *FieldError per field that cannot build a detector, so a config file
// with several mistakes is fixed in one pass; errors.As finds the first,
// and the joined error's Unwrap() []error lists them all. A zero
// NumClasses is allowed (filled from data later); a built detector
// requires it to be positive (New checks).
func (c Config) Validate() error {
	var errs []error
	bad := func(field string, value any, want string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Value: value, Want: fmt.Sprintf(want, args...)})
	}
	if c.Name == "" {
		bad("name", c.Name, "a name")
	}
	if c.Family != FamilyRetinaNet && c.Family != FamilyFCOS && c.Family != FamilyFasterRCNN {
		bad("family", c.Family, "%q, %q or %q", FamilyRetinaNet, FamilyFCOS, FamilyFasterRCNN)
	}
	if c.NumClasses < 0 {
		bad("num_classes", c.NumClasses, "≥ 0 (0: taken from the data)")
	}
	if len(c.ClassNames) > 0 && len(c.ClassNames) != c.NumClasses {
		bad("class_names", c.ClassNames, "num_classes (%d) names", c.NumClasses)
	}
	for i := 0; i < 3; i++ {
		if !(c.Input.Std[i] > 0) {
			bad(fmt.Sprintf("input.std[%d]", i), c.Input.Std[i], "> 0")
		}
	}
	if c.Input.Resize != ResizeLetterbox && c.Input.Resize != ResizeStretch {
		bad("input.resize", c.Input.Resize, "%q or %q", ResizeLetterbox, ResizeStretch)
	}
	if c.Input.PadValue < 0 || c.Input.PadValue > 255 {
		bad("input.pad_value", c.Input.PadValue, "a raw pixel value in [0, 255]")
	}
	if c.Input.Size <= 0 || c.Input.Size%32 != 0 {
		bad("input.size", c.Input.Size, "a positive multiple of 32")
	}
	c.validateBackbone(bad)
	if c.Neck != nil {
		c.validateNeck(bad)
	}
	levels := c.FPN.Levels
	consecutive := len(levels) >= 3
	for i, l := range levels {
		consecutive = consecutive && l == 3+i && l <= 7
	}
	if !consecutive {
		bad("fpn.levels", levels, "consecutive levels from 3 up to at most 7, at least P3–P5 (e.g. [3,4,5])")
	}
	if c.FPN.Channels <= 0 {
		bad("fpn.channels", c.FPN.Channels, "> 0")
	}
	if c.Head.Convs < 0 {
		bad("head.convs", c.Head.Convs, "≥ 0")
	}
	if c.Head.Channels <= 0 {
		bad("head.channels", c.Head.Channels, "> 0")
	}
	if !validAct(c.Head.Act) {
		bad("head.act", c.Head.Act, "a known activation (%s)", activationNames())
	}
	if !(c.Head.PriorProb > 0 && c.Head.PriorProb < 1) {
		bad("head.prior_prob", c.Head.PriorProb, "in (0, 1)")
	}
	switch c.Family {
	case FamilyRetinaNet, FamilyFasterRCNN:
		a := c.Anchors
		if len(a.Sizes) != len(levels) {
			bad("anchors.sizes", a.Sizes, "one size per fpn level (%d)", len(levels))
		}
		for _, f := range []struct {
			field  string
			values []float32
		}{{"anchors.sizes", a.Sizes}, {"anchors.ratios", a.Ratios}, {"anchors.scales", a.Scales}} {
			positive := len(f.values) > 0
			for _, v := range f.values {
				positive = positive && v > 0
			}
			if !positive {
				bad(f.field, f.values, "at least one value, all positive")
			}
		}
		s := c.Assigner
		if !(s.NegIoU > 0 && s.NegIoU <= s.PosIoU) {
			bad("assigner.neg_iou", s.NegIoU, "0 < neg_iou ≤ pos_iou (%v)", s.PosIoU)
		}
		if !(s.PosIoU > 0 && s.PosIoU <= 1) {
			bad("assigner.pos_iou", s.PosIoU, "in (0, 1]")
		}
		if c.Family == FamilyFasterRCNN {
			if c.Loss.Box != BoxLossSmoothL1 {
				bad("loss.box", c.Loss.Box, "%q: the RPN regresses encoded deltas", BoxLossSmoothL1)
			}
		} else if c.Loss.Box != BoxLossSmoothL1 && c.Loss.Box != BoxLossGIoU {
			bad("loss.box", c.Loss.Box, "%q or %q", BoxLossSmoothL1, BoxLossGIoU)
		}
		for i, w := range c.Loss.BoxCoderWeights {
			if !(w > 0) {
				bad(fmt.Sprintf("loss.box_coder_weights[%d]", i), w, "> 0")
			}
		}
	case FamilyFCOS:
		if len(c.Assigner.SizeRanges) != len(levels) {
			bad("assigner.size_ranges", c.Assigner.SizeRanges, "one range per fpn level (%d)", len(levels))
		}
		for i, r := range c.Assigner.SizeRanges {
			if !(r[0] >= 0 && r[1] > r[0]) {
				bad(fmt.Sprintf("assigner.size_ranges[%d]", i), r, "[lo, hi] with 0 ≤ lo < hi")
			}
		}
		if c.Assigner.CenterRadius < 0 {
			bad("assigner.center_radius", c.Assigner.CenterRadius, "≥ 0 (0: no center sampling)")
		}
		if c.Loss.Box != BoxLossGIoU {
			bad("loss.box", c.Loss.Box, "%q: FCOS regresses distances", BoxLossGIoU)
		}
	}
	if c.TwoStage() {
		// The RPN's objectness is plain binary cross-entropy over sampled
		// anchors; a focal setting would be silently ignored.
		if c.Loss.FocalGamma != 0 {
			bad("loss.focal_gamma", c.Loss.FocalGamma, "0: the two-stage family has no focal loss")
		}
		if c.Loss.FocalAlpha != 0 {
			bad("loss.focal_alpha", c.Loss.FocalAlpha, "0: the two-stage family has no focal loss")
		}
	} else {
		if c.Loss.FocalGamma < 0 {
			bad("loss.focal_gamma", c.Loss.FocalGamma, "≥ 0")
		}
		if c.Loss.FocalAlpha > 1 {
			bad("loss.focal_alpha", c.Loss.FocalAlpha, "≤ 1 (negative disables it)")
		}
	}
	if !(c.Loss.BoxWeight > 0) {
		bad("loss.box_weight", c.Loss.BoxWeight, "> 0")
	}
	if c.Loss.Box == BoxLossSmoothL1 && c.Loss.SmoothL1Beta < 0 {
		bad("loss.smooth_l1_beta", c.Loss.SmoothL1Beta, "≥ 0")
	}
	p := c.Postprocess
	if p.ScoreThreshold < 0 || p.ScoreThreshold >= 1 {
		bad("postprocess.score_threshold", p.ScoreThreshold, "in [0, 1)")
	}
	if c.TwoStage() {
		if p.TopKPerLevel != 0 {
			bad("postprocess.topk_per_level", p.TopKPerLevel, "0: two-stage candidates are bounded by rpn.post_nms_topk_test")
		}
	} else if p.TopKPerLevel <= 0 {
		bad("postprocess.topk_per_level", p.TopKPerLevel, "> 0")
	}
	if !(p.NMSIoU > 0 && p.NMSIoU <= 1) {
		bad("postprocess.nms_iou", p.NMSIoU, "in (0, 1]")
	}
	if p.MaxDetections <= 0 {
		bad("postprocess.max_detections", p.MaxDetections, "> 0")
	}
	t := c.Train
	if t.Optimizer != "sgd" && t.Optimizer != "adamw" {
		bad("train.optimizer", t.Optimizer, `"sgd" or "adamw"`)
	}
	if t.Schedule != "cosine" && t.Schedule != "step" {
		bad("train.schedule", t.Schedule, `"cosine" or "step"`)
	}
	if !(t.LR > 0) {
		bad("train.lr", t.LR, "> 0")
	}
	if t.Epochs <= 0 {
		bad("train.epochs", t.Epochs, "> 0")
	}
	if t.Batch <= 0 {
		bad("train.batch", t.Batch, "> 0")
	}
	if t.WarmupSteps < 0 {
		bad("train.warmup_steps", t.WarmupSteps, "≥ 0")
	}
	if t.WeightDecay < 0 {
		bad("train.weight_decay", t.WeightDecay, "≥ 0")
	}
	if math.IsNaN(t.GradClip) {
		bad("train.grad_clip", t.GradClip, "a number (0: no clipping)")
	}
	c.validateStages(bad)
	return errors.Join(errs...)
}

// validateStages checks the rpn and roi_head sections: required by the
// two-stage family, refused by the others.
func (c Config) validateStages(bad func(field string, value any, want string, args ...any)) {
	if !c.TwoStage() {
		if c.RPN != nil {
			bad("rpn", *c.RPN, "no rpn section for family %q (only %q has one)", c.Family, FamilyFasterRCNN)
		}
		if c.ROIHead != nil {
			bad("roi_head", *c.ROIHead, "no roi_head section for family %q (only %q has one)", c.Family, FamilyFasterRCNN)
		}
		return
	}
	if r := c.RPN; r == nil {
		bad("rpn", nil, "an rpn section (sampling and proposal settings)")
	} else {
		if r.BatchPerImage <= 0 {
			bad("rpn.batch_per_image", r.BatchPerImage, "> 0")
		}
		if !(r.PositiveFraction > 0 && r.PositiveFraction <= 1) {
			bad("rpn.positive_fraction", r.PositiveFraction, "in (0, 1]")
		}
		for _, f := range []struct {
			field string
			v     int
		}{{"rpn.pre_nms_topk_train", r.PreNMSTopKTrain}, {"rpn.pre_nms_topk_test", r.PreNMSTopKTest}, {"rpn.post_nms_topk_train", r.PostNMSTopKTrain}, {"rpn.post_nms_topk_test", r.PostNMSTopKTest}} {
			if f.v <= 0 {
				bad(f.field, f.v, "> 0")
			}
		}
		if !(r.NMSIoU > 0 && r.NMSIoU <= 1) {
			bad("rpn.nms_iou", r.NMSIoU, "in (0, 1]")
		}
		if !(r.MinSize >= 0) {
			bad("rpn.min_size", r.MinSize, "≥ 0 pixels")
		}
	}
	h := c.ROIHead
	if h == nil {
		bad("roi_head", nil, "a roi_head section (pooling, box head, sampling)")
		return
	}
	if h.PoolSize < 1 || h.PoolSize > 32 {
		bad("roi_head.pool_size", h.PoolSize, "1..32")
	}
	if h.SamplingRatio < 0 {
		bad("roi_head.sampling_ratio", h.SamplingRatio, "≥ 0 (0: adaptive)")
	}
	if len(c.FPN.Levels) > 0 && (h.CanonicalLevel < c.FPN.Levels[0] || h.CanonicalLevel > c.FPN.Levels[len(c.FPN.Levels)-1]) {
		bad("roi_head.canonical_level", h.CanonicalLevel, "a pyramid level of fpn.levels %v", c.FPN.Levels)
	}
	if !(h.CanonicalSize > 0) || math.IsInf(float64(h.CanonicalSize), 0) {
		bad("roi_head.canonical_size", h.CanonicalSize, "> 0 pixels")
	}
	if h.FCDim <= 0 {
		bad("roi_head.fc_dim", h.FCDim, "> 0")
	}
	if h.BatchPerImage <= 0 {
		bad("roi_head.batch_per_image", h.BatchPerImage, "> 0")
	}
	if !(h.PositiveFraction > 0 && h.PositiveFraction <= 1) {
		bad("roi_head.positive_fraction", h.PositiveFraction, "in (0, 1]")
	}
	if !(h.FgIoU > 0 && h.FgIoU <= 1) {
		bad("roi_head.fg_iou", h.FgIoU, "in (0, 1]")
	}
	for i, w := range h.BoxCoderWeights {
		if !(w > 0) {
			bad(fmt.Sprintf("roi_head.box_coder_weights[%d]", i), w, "> 0")
		}
	}
	if !(h.SmoothL1Beta >= 0) {
		bad("roi_head.smooth_l1_beta", h.SmoothL1Beta, "≥ 0 (0: L1)")
	}
	if !(h.BoxWeight > 0) {
		bad("roi_head.box_weight", h.BoxWeight, "> 0")
	}
}

func (c Config) validateBackbone(bad func(field string, value any, want string, args ...any)) {
	b := c.Backbone
	if b.Type == BackboneImported {
		if b.Graph == nil {
			bad("backbone.graph", nil, "the imported graph (made by gidedge import)")
			return
		}
		if len(b.Stem) > 0 || len(b.Stages) > 0 {
			bad("backbone.stages", b.Stages, "none for an imported backbone (its graph is the whole backbone)")
		}
		validateGraph(b.Graph, "backbone.graph", bad)
		if len(b.Graph.Inputs) != 1 {
			bad("backbone.graph.inputs", b.Graph.Inputs, "one input, the image")
		}
		if !graphPortsAreLevels(b.Graph.Outputs) {
			bad("backbone.graph.outputs", b.Graph.Outputs, "three outputs C3, C4, C5 at strides 8, 16 and 32")
		}
		return
	}
	if b.Graph != nil {
		bad("backbone.graph", "a graph", "none unless backbone.type is %q", BackboneImported)
	}
	if b.Type != BackboneResNet && b.Type != BackboneMobileNetV2 {
		bad("backbone.type", b.Type, "%q, %q or %q", BackboneResNet, BackboneMobileNetV2, BackboneImported)
	}
	if !validAct(b.Act) {
		bad("backbone.act", b.Act, "a known activation (%s)", activationNames())
	}
	if len(b.Stem) == 0 {
		bad("backbone.stem", b.Stem, "at least one stride-2 convolution width")
	}
	for i, w := range b.Stem {
		if w <= 0 {
			bad(fmt.Sprintf("backbone.stem[%d]", i), w, "> 0")
		}
	}
	stride := 1 << len(b.Stem)
	seen := map[int]bool{}
	for i, s := range b.Stages {
		if s.Out <= 0 || s.Depth <= 0 || (s.Stride != 1 && s.Stride != 2) {
			bad(fmt.Sprintf("backbone.stages[%d]", i), s, "out > 0, depth > 0, stride 1 or 2")
		}
		if b.Type == BackboneMobileNetV2 && s.Expand <= 0 {
			bad(fmt.Sprintf("backbone.stages[%d].expand", i), s.Expand, "≥ 1 for mobilenetv2")
		}
		if s.Stride == 2 {
			stride *= 2
		}
		seen[stride] = true
	}
	for _, want := range []int{8, 16, 32} {
		if !seen[want] {
			bad("backbone.stages", b.Stages, "stages that produce stride %d (the stem gives stride %d)", want, 1<<len(b.Stem))
		}
	}
	if stride != 32 {
		bad("backbone.stages", b.Stages, "stages ending at stride 32, not %d", stride)
	}
}

// activations are the activations a config may name.
var activations = []nn.Activation{nn.ActNone, nn.ActReLU, nn.ActReLU6, nn.ActLeakyReLU, nn.ActSiLU, nn.ActHardSwish}

func validAct(a nn.Activation) bool { return slices.Contains(activations, a) }

// activationNames lists the activations for an error message.
func activationNames() string {
	names := make([]string, len(activations))
	for i, a := range activations {
		names[i] = strconv.Quote(string(a))
	}
	return strings.Join(names, ", ")
}

// validateNeck checks an imported neck against the backbone and the FPN.
func (c Config) validateNeck(bad func(field string, value any, want string, args ...any)) {
	n := c.Neck
	validateGraph(n, "neck", bad)
	if len(n.Inputs) != 3 {
		bad("neck.inputs", n.Inputs, "three inputs, the backbone's C3, C4, C5")
	} else if in, ok := c.backboneChannels(); ok {
		for i, p := range n.Inputs {
			if p.Channels != in[i] {
				bad(fmt.Sprintf("neck.inputs[%d].channels", i), p.Channels, "the backbone's C%d width %d", i+3, in[i])
			}
		}
	}
	if !graphPortsAreLevels(n.Outputs) {
		bad("neck.outputs", n.Outputs, "three outputs P3, P4, P5 at strides 8, 16 and 32")
	}
	for i, p := range n.Outputs {
		if p.Channels != c.FPN.Channels {
			bad(fmt.Sprintf("neck.outputs[%d].channels", i), p.Channels, "fpn.channels (%d): the head reads every level with one width", c.FPN.Channels)
		}
	}
}

// backboneChannels returns the widths of C3, C4 and C5 a valid backbone
// config gives; ok is false when the config cannot tell.
func (c Config) backboneChannels() (ch [3]int, ok bool) {
	b := c.Backbone
	if b.Type == BackboneImported {
		if b.Graph == nil || len(b.Graph.Outputs) != 3 {
			return ch, false
		}
		for i, p := range b.Graph.Outputs {
			ch[i] = p.Channels
		}
		return ch, true
	}
	stride := 1 << len(b.Stem)
	for _, st := range b.Stages {
		if st.Stride == 2 {
			stride *= 2
		}
		for k, want := range []int{8, 16, 32} {
			if stride == want {
				ch[k] = st.Out
			}
		}
	}
	return ch, ch[0] > 0 && ch[1] > 0 && ch[2] > 0
}
