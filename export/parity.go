package export

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	onnxruntime "github.com/yalue/onnxruntime_go"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/ort"
)

// OutputParity compares one output of the engine and of ONNX Runtime.
type OutputParity struct {
	Name  string  `json:"name"`
	Shape []int64 `json:"shape"`
	// MaxAbsDiff is the largest |engine − onnx| over the output.
	MaxAbsDiff float64 `json:"max_abs_diff"`
	// Scale is the largest |engine| value: what "relative" is measured against.
	Scale float64 `json:"scale"`
	// Relative is MaxAbsDiff / Scale (0 when both are 0).
	Relative float64 `json:"relative"`
}

// Parity is the outcome of a parity check.
type Parity struct {
	Batch      int            `json:"batch"`
	Tolerance  float64        `json:"tolerance"`
	ORTVersion string         `json:"onnxruntime_version"`
	Outputs    []OutputParity `json:"outputs"`
	// Worst is the largest Relative, WorstOutput its output.
	Worst       float64 `json:"worst_relative"`
	WorstOutput string  `json:"worst_output"`
}

// OK reports whether every output is within the tolerance.
func (p *Parity) OK() bool { return p != nil && p.Worst <= p.Tolerance }

// CheckParity runs a seeded batch of opts.ParityBatch standard-normal images
// (normalised input space) through the detector in inference mode and
// through ONNX Runtime on the serialized model, and compares the named
// outputs. An output over the tolerance, a shape mismatch or a non-finite
// value makes an error wrapping ErrParity; the figures are returned either way.
func CheckParity(d *models.Detector, model []byte, names []string, opts Options) (*Parity, error) {
	if d.Config.TwoStage() {
		opts.Batch, opts.ParityBatch = 1, 1 // as Build exports it
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	size := d.Config.Input.Size
	n := opts.ParityBatch
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x5eed))
	input := make([]float32, n*3*size*size)
	for i := range input {
		input[i] = float32(rng.NormFloat64())
	}
	want, err := engineOutputs(d, input, n, size, names)
	if err != nil {
		return nil, err
	}
	got, err := runORT(model, input, []int64{int64(n), 3, int64(size), int64(size)}, names, opts.Threads)
	if err != nil {
		return nil, err
	}
	p := &Parity{Batch: n, Tolerance: opts.Tolerance, ORTVersion: ort.Version(), WorstOutput: names[0]}
	for i, name := range names {
		op, err := Measure(name, want[i].shape, want[i].data, got[i].shape, got[i].data)
		if err != nil {
			return p, err
		}
		if op.Relative > p.Worst || i == 0 {
			p.Worst, p.WorstOutput = op.Relative, name
		}
		p.Outputs = append(p.Outputs, op)
	}
	if !p.OK() {
		var bad []string
		for _, o := range p.Outputs {
			if o.Relative > p.Tolerance {
				bad = append(bad, fmt.Sprintf("%s %.3g (|diff| %.3g, scale %.3g)", o.Name, o.Relative, o.MaxAbsDiff, o.Scale))
			}
		}
		return p, fmt.Errorf("%w: relative difference over %.3g on %s", ErrParity, p.Tolerance, strings.Join(bad, ", "))
	}
	return p, nil
}

// Measure compares one output of the engine (want) with ONNX Runtime's
// (got): the largest absolute difference and its ratio to the largest
// absolute engine value. A shape mismatch or a non-finite difference is an
// error wrapping ErrParity.
func Measure(name string, wantShape []int64, want []float32, gotShape []int64, got []float32) (OutputParity, error) {
	op := OutputParity{Name: name, Shape: gotShape}
	if !slices.Equal(wantShape, gotShape) || len(want) != len(got) {
		return op, fmt.Errorf("%w: output %q has shape %v in ONNX Runtime, %v in the engine", ErrParity, name, gotShape, wantShape)
	}
	for j, v := range want {
		ref := float64(v)
		diff := math.Abs(float64(got[j]) - ref)
		if math.IsNaN(diff) || math.IsInf(diff, 0) {
			return op, fmt.Errorf("%w: output %q element %d is %v in ONNX Runtime, %v in the engine", ErrParity, name, j, got[j], v)
		}
		op.MaxAbsDiff = max(op.MaxAbsDiff, diff)
		op.Scale = max(op.Scale, math.Abs(ref))
	}
	if op.MaxAbsDiff > 0 {
		op.Relative = op.MaxAbsDiff / max(op.Scale, math.SmallestNonzeroFloat32)
	}
	return op, nil
}

// array is a float tensor read back from either side.
type array struct {
	shape []int64
	data  []float32
}

func fromTensor(t *engine.Tensor) array {
	s := t.Shape()
	shape := make([]int64, len(s))
	for i, d := range s {
		shape[i] = int64(d)
	}
	return array{shape: shape, data: t.ToHost()}
}

// engineOutputs computes the named outputs with the engine: the detector's
// inference-mode forward pass, then models.Flatten, sigmoid and
// Detector.DecodeBoxes for decoded outputs.
func engineOutputs(d *models.Detector, input []float32, n, size int, names []string) ([]array, error) {
	out := make([]array, len(names))
	var err error
	engine.NoGrad(func() {
		x := engine.FromHost(input, n, 3, size, size)
		o := d.Forward(x, false)
		var cls, reg *engine.Tensor
		var second map[string]array
		if d.Config.TwoStage() {
			second = twoStageOutputs(d, o)
		}
		for i, name := range names {
			switch {
			case second != nil && (name == ScoresName || name == BoxesName):
				out[i] = second[name]
			case name == ScoresName || name == BoxesName:
				if cls == nil {
					cls, reg = models.Flatten(o)
				}
				if name == ScoresName {
					out[i] = fromTensor(engine.Sigmoid(cls))
					continue
				}
				p := d.Priors(size, size)
				r := p.Len()
				flat := reg.ToHost()
				boxes := make([]float32, 0, n*r*4)
				for img := 0; img < n; img++ {
					boxes = append(boxes, d.DecodeBoxes(flat[img*r*4:(img+1)*r*4], p)...)
				}
				out[i] = array{shape: []int64{int64(n), int64(r), 4}, data: boxes}
			case name == CenternessName:
				c := models.FlattenCenterness(o)
				if c == nil {
					err = fmt.Errorf("export: output %q: the %s detector has no centerness", name, d.Config.Family)
					return
				}
				out[i] = fromTensor(engine.Sigmoid(c))
			default:
				t, lerr := levelOutput(o, name)
				if lerr != nil {
					err = lerr
					return
				}
				out[i] = fromTensor(t)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("export: engine forward pass on %d×3×%d×%d: %w", n, size, size, err)
	}
	return out, nil
}

// twoStageOutputs computes a two-stage export's decoded outputs with the
// engine for one image: the inference-setting proposals, the box head's
// foreground probabilities [1, P, K] and its class-specific boxes
// [1, P, K, 4] (models.Detector.SecondStage and DecodeROIBoxes).
func twoStageOutputs(d *models.Detector, o *models.Outputs) map[string]array {
	props := d.Proposals(o, false)[0]
	probs, reg := d.SecondStage(o, []models.Proposals{props})
	p, k := int64(props.Len()), int64(d.Config.NumClasses)
	boxes := d.DecodeROIBoxes(props.Boxes, reg)
	if probs == nil {
		probs, boxes = []float32{}, []float32{}
	}
	return map[string]array{
		ScoresName: {shape: []int64{1, p, k}, data: probs},
		BoxesName:  {shape: []int64{1, p, k, 4}, data: boxes},
	}
}

// levelOutput returns the per-level map a raw or feature output name
// ("cls_logits_2") refers to.
func levelOutput(o *models.Outputs, name string) (*engine.Tensor, error) {
	cut := strings.LastIndexByte(name, '_')
	if cut < 0 {
		return nil, fmt.Errorf("export: output %q is not a known output name", name)
	}
	level, err := strconv.Atoi(name[cut+1:])
	if err != nil {
		return nil, fmt.Errorf("export: output %q is not a known output name", name)
	}
	var maps []*engine.Tensor
	switch name[:cut] {
	case "feature":
		maps = o.Features
	case "cls_logits":
		maps = o.ClsLogits
	case "box_reg":
		maps = o.BoxRegs
	case "centerness":
		maps = o.Centerness
	default:
		return nil, fmt.Errorf("export: output %q is not a known output name", name)
	}
	if level < 0 || level >= len(maps) {
		return nil, fmt.Errorf("export: output %q: the engine has %d such levels", name, len(maps))
	}
	return maps[level], nil
}

// runORT runs a serialized model on one float input named InputName and
// returns the named float outputs.
func runORT(model []byte, input []float32, shape []int64, names []string, threads int) ([]array, error) {
	shapes, values, err := RunONNX(model, InputName, input, shape, names, threads)
	if err != nil {
		return nil, err
	}
	res := make([]array, len(names))
	for i := range res {
		res[i] = array{shape: shapes[i], data: values[i]}
	}
	return res, nil
}

// RunONNX runs a serialized model in ONNX Runtime (CPU, threads intra-op
// threads, 0 to let it choose) on one float input and returns the shapes
// and values of the named float outputs.
func RunONNX(model []byte, inputName string, input []float32, shape []int64, names []string, threads int) ([][]int64, [][]float32, error) {
	if err := ort.Init(); err != nil {
		return nil, nil, fmt.Errorf("export: parity check needs ONNX Runtime: %w", err)
	}
	so, err := onnxruntime.NewSessionOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("export: onnx runtime session options: %w", err)
	}
	defer so.Destroy()
	if threads > 0 {
		if err := so.SetIntraOpNumThreads(threads); err != nil {
			return nil, nil, fmt.Errorf("export: onnx runtime threads %d: %w", threads, err)
		}
	}
	sess, err := onnxruntime.NewDynamicAdvancedSessionWithONNXData(model, []string{inputName}, names, so)
	if err != nil {
		return nil, nil, fmt.Errorf("export: onnx runtime rejects the graph: %w", err)
	}
	defer sess.Destroy()
	in, err := onnxruntime.NewTensor(onnxruntime.NewShape(shape...), input)
	if err != nil {
		return nil, nil, fmt.Errorf("export: onnx runtime input %v: %w", shape, err)
	}
	defer in.Destroy()
	outs := make([]onnxruntime.Value, len(names))
	defer func() {
		for _, v := range outs {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := sess.Run([]onnxruntime.Value{in}, outs); err != nil {
		return nil, nil, fmt.Errorf("export: onnx runtime run on %v: %w", shape, err)
	}
	shapes, values := make([][]int64, len(names)), make([][]float32, len(names))
	for i, v := range outs {
		t, ok := v.(*onnxruntime.Tensor[float32])
		if !ok {
			return nil, nil, fmt.Errorf("export: onnx runtime output %q is %T, want a float32 tensor", names[i], v)
		}
		shapes[i], values[i] = slices.Clone([]int64(t.GetShape())), slices.Clone(t.GetData())
	}
	return shapes, values, nil
}
