package infer

import (
	"fmt"
	"strings"
	"sync"
)

// Params are the post-processing settings of one detection call. A zero
// field means "the model's default" (from its metadata or adapter).
type Params struct {
	ScoreThreshold float32 // keep scores strictly above this
	IoUThreshold   float32 // NMS overlap above which the lower score is dropped
	MaxDetections  int     // at most this many detections after NMS
}

// Or fills zero fields of p from def.
func (p Params) Or(def Params) Params {
	if p.ScoreThreshold == 0 {
		p.ScoreThreshold = def.ScoreThreshold
	}
	if p.IoUThreshold == 0 {
		p.IoUThreshold = def.IoUThreshold
	}
	if p.MaxDetections == 0 {
		p.MaxDetections = def.MaxDetections
	}
	return p
}

// Validate reports a threshold out of range.
func (p Params) Validate() error {
	if !(p.ScoreThreshold >= 0 && p.ScoreThreshold <= 1) {
		return fmt.Errorf("infer: score_threshold %v, want 0..1", p.ScoreThreshold)
	}
	if !(p.IoUThreshold >= 0 && p.IoUThreshold <= 1) {
		return fmt.Errorf("infer: iou_threshold %v, want 0..1", p.IoUThreshold)
	}
	if p.MaxDetections < 0 {
		return fmt.Errorf("infer: max_detections %d, want >= 0", p.MaxDetections)
	}
	return nil
}

// Tensor is a float32 output of a run, shaped as ONNX Runtime returned it.
// Data is only valid until the run's session is handed back to the pool.
type Tensor struct {
	Shape []int64
	Data  []float32
}

// Outputs are a run's float32 outputs by name.
type Outputs map[string]Tensor

// get returns the named output after checking its shape against want, where
// -1 matches any size.
func (o Outputs) get(name string, want ...int64) (Tensor, error) {
	t, ok := o[name]
	if !ok {
		return Tensor{}, fmt.Errorf("infer: output %q missing (or not float32)", name)
	}
	bad := len(t.Shape) != len(want)
	for i := 0; !bad && i < len(want); i++ {
		bad = want[i] >= 0 && t.Shape[i] != want[i]
	}
	if bad {
		return Tensor{}, fmt.Errorf("infer: output %q has shape %v, want %v", name, t.Shape, want)
	}
	return t, nil
}

// An Adapter knows one model family's pre- and post-processing.
type Adapter interface {
	// Name identifies the adapter ("gidedge", "nanodet", "ultraface", "yolox").
	Name() string
	// Preprocess describes the input tensor the model expects.
	Preprocess() Preprocess
	// ClassNames names each class index the model predicts.
	ClassNames() []string
	// Defaults are the model's post-processing defaults.
	Defaults() Params
	// Decode appends to dst every (box, class) whose score is above
	// p.ScoreThreshold, with boxes in model-input pixels, before NMS.
	Decode(out Outputs, p Params, dst []Detection) ([]Detection, error)
}

// An AdapterFactory inspects a model's signature and returns its adapter,
// or ok=false when the model is not of its family. An error means the model
// claims the family but cannot be used (a bad shape, invalid metadata).
type AdapterFactory func(sig Signature) (a Adapter, ok bool, err error)

var (
	adaptersMu sync.RWMutex
	adapters   []namedFactory
)

type namedFactory struct {
	name string
	f    AdapterFactory
}

// RegisterAdapter adds a model family. Factories are tried in registration
// order; the built-in ones are gidedge (metadata), nanodet, ultraface and yolox.
func RegisterAdapter(name string, f AdapterFactory) {
	adaptersMu.Lock()
	defer adaptersMu.Unlock()
	adapters = append(adapters, namedFactory{name, f})
}

// AdapterNames lists the registered adapters in the order they are tried.
func AdapterNames() []string {
	adaptersMu.RLock()
	defer adaptersMu.RUnlock()
	names := make([]string, len(adapters))
	for i, a := range adapters {
		names[i] = a.name
	}
	return names
}

func init() {
	RegisterAdapter("gidedge", matchGidedge)
	RegisterAdapter("nanodet", matchNanoDet)
	RegisterAdapter("ultraface", matchUltraFace)
	RegisterAdapter("yolox", matchYOLOX)
}

// chooseAdapter picks the adapter named force, or the first that matches.
func chooseAdapter(sig Signature, force string) (Adapter, error) {
	adaptersMu.RLock()
	list := append([]namedFactory(nil), adapters...)
	adaptersMu.RUnlock()
	for _, nf := range list {
		if force != "" && nf.name != force {
			continue
		}
		a, ok, err := nf.f(sig)
		if err != nil {
			return nil, fmt.Errorf("infer: model %s: %s adapter: %w", sig.Path, nf.name, err)
		}
		if ok {
			return a, nil
		}
		if force != "" {
			return nil, fmt.Errorf("infer: model %s is not a %s model (outputs %s)", sig.Path, force, outputNames(sig))
		}
	}
	if force != "" {
		return nil, fmt.Errorf("infer: adapter %q unknown, want one of %s", force, strings.Join(AdapterNames(), ", "))
	}
	return nil, fmt.Errorf("infer: model %s: no adapter recognises it (outputs %s, no %q metadata); export it with gidedge export or use one of %s",
		sig.Path, outputNames(sig), MetadataKey, strings.Join(AdapterNames(), ", "))
}

func outputNames(sig Signature) string {
	var parts []string
	for _, o := range sig.Outputs {
		parts = append(parts, fmt.Sprintf("%s%v", o.Name, o.Shape))
	}
	return strings.Join(parts, " ")
}

// imageInput returns the model's single 4-D image input's height and width
// when they are fixed, or 0 when they are dynamic.
func imageInput(sig Signature) (TensorInfo, int, int, error) {
	if len(sig.Inputs) != 1 {
		return TensorInfo{}, 0, 0, fmt.Errorf("model has %d inputs, want 1 image input", len(sig.Inputs))
	}
	in := sig.Inputs[0]
	if len(in.Shape) != 4 || (in.Shape[1] != 3 && in.Shape[1] >= 0) {
		return TensorInfo{}, 0, 0, fmt.Errorf("input %q has shape %v, want [N,3,H,W]", in.Name, in.Shape)
	}
	if in.Datatype != "FP32" {
		return TensorInfo{}, 0, 0, fmt.Errorf("input %q is %s, want FP32", in.Name, in.Datatype)
	}
	return in, int(max(in.Shape[2], 0)), int(max(in.Shape[3], 0)), nil
}
