package infer

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// MetadataKey is the ONNX metadata_props key under which `gidedge export`
// stores a ModelInfo as JSON.
const MetadataKey = "gidedge"

// ModelInfo is stored by `gidedge export` in the ONNX metadata_props under key
// "gidedge" as JSON. Everything a server needs to run the model comes from it.
type ModelInfo struct {
	GidedgeVersion string     `json:"gidedge_version"`
	ClassNames     []string   `json:"class_names"`
	Input          Preprocess `json:"input"`
	Head           HeadInfo   `json:"head"`
}

// HeadInfo describes the detection head and how to read its outputs.
type HeadInfo struct {
	Family         string    `json:"family"`  // "retinanet" | "fcos" | "faster_rcnn"
	Outputs        string    `json:"outputs"` // "decoded" | "raw"
	Strides        []int     `json:"strides"`
	AnchorSizes    []float32 `json:"anchor_sizes,omitempty"` // retinanet, faster_rcnn (RPN): base size per level
	AnchorRatios   []float32 `json:"anchor_ratios,omitempty"`
	AnchorScales   []float32 `json:"anchor_scales,omitempty"`
	ScoreThreshold float32   `json:"score_threshold"`
	NMSIoU         float32   `json:"nms_iou"`
	MaxDetections  int       `json:"max_detections"`
	BoxesOutput    string    `json:"boxes_output"`  // decoded: [N,R,4] x1,y1,x2,y2 in input pixels; faster_rcnn: class-specific [1,R,C,4]
	ScoresOutput   string    `json:"scores_output"` // decoded: [N,R,C] probabilities (sigmoid; faster_rcnn: softmax without background)
	// CenternessOutput names the FCOS centerness probabilities [N,R,1] of a
	// decoded export; the detection score is then √(class probability ·
	// centerness), as the training-side postprocess ranks them.
	CenternessOutput string `json:"centerness_output,omitempty"`
}

// Head output kinds.
const (
	OutputsDecoded = "decoded"
	OutputsRaw     = "raw"
)

// ReadModelInfo parses the ModelInfo stored in ONNX metadata. The bool is
// false, with a nil error, when the metadata has no "gidedge" key (a
// third-party model); a present but invalid entry is an error.
func ReadModelInfo(meta map[string]string) (ModelInfo, bool, error) {
	raw, ok := meta[MetadataKey]
	if !ok {
		return ModelInfo{}, false, nil
	}
	var info ModelInfo
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		return ModelInfo{}, true, fmt.Errorf("infer: metadata %q: %w", MetadataKey, err)
	}
	if err := info.Validate(); err != nil {
		return ModelInfo{}, true, fmt.Errorf("infer: metadata %q: %w", MetadataKey, err)
	}
	return info, true, nil
}

// Metadata encodes m as the metadata_props entry ReadModelInfo reads back.
func (m ModelInfo) Metadata() (map[string]string, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("infer: encode model info: %w", err)
	}
	return map[string]string{MetadataKey: string(b)}, nil
}

// Validate reports the first field a server could not use.
func (m ModelInfo) Validate() error {
	if len(m.ClassNames) == 0 {
		return fmt.Errorf("infer: model info: class_names is empty, want one name per class")
	}
	if err := m.Input.Validate(); err != nil {
		return fmt.Errorf("infer: model info: input: %w", err)
	}
	h := m.Head
	switch h.Outputs {
	case OutputsDecoded:
		if h.BoxesOutput == "" || h.ScoresOutput == "" {
			return fmt.Errorf("infer: model info: head: decoded outputs need boxes_output and scores_output, got %q and %q", h.BoxesOutput, h.ScoresOutput)
		}
	case OutputsRaw:
	default:
		return fmt.Errorf("infer: model info: head: outputs %q, want %q or %q", h.Outputs, OutputsDecoded, OutputsRaw)
	}
	if !(h.ScoreThreshold >= 0 && h.ScoreThreshold <= 1) {
		return fmt.Errorf("infer: model info: head: score_threshold %v, want 0..1", h.ScoreThreshold)
	}
	if !(h.NMSIoU >= 0 && h.NMSIoU <= 1) || math.IsNaN(float64(h.NMSIoU)) {
		return fmt.Errorf("infer: model info: head: nms_iou %v, want 0..1", h.NMSIoU)
	}
	if h.MaxDetections < 0 {
		return fmt.Errorf("infer: model info: head: max_detections %d, want >= 0", h.MaxDetections)
	}
	return nil
}
