package distill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/models"
)

// ErrLayout is wrapped by every error about a teacher whose head or pyramid
// does not line up with the student's.
var ErrLayout = errors.New("distill: teacher and student layouts differ")

// Teacher is a frozen detector the student learns from. Its outputs use the
// layout of models.Outputs and are constants: nothing back-propagates into
// a teacher.
type Teacher interface {
	// Config describes the teacher's input, pyramid and head; it is what
	// CheckLayout compares with the student.
	Config() models.Config
	// Forward runs the teacher on x [N, 3, H, W], normalised as the
	// teacher's Config.Input says.
	Forward(ctx context.Context, x *engine.Tensor) (*models.Outputs, error)
	// Describe names the teacher for logs.
	Describe() string
	Close() error
}

// OpenTeacher loads a teacher: an ONNX model when path ends in ".onnx"
// (mapping, optional, names its outputs and config: see OutputMap), a
// gidedge checkpoint otherwise.
func OpenTeacher(path, mapping string) (Teacher, error) {
	if strings.HasSuffix(strings.ToLower(path), ".onnx") {
		return OpenONNXTeacher(path, mapping)
	}
	if mapping != "" {
		return nil, fmt.Errorf("distill: teacher %s is a checkpoint, an output mapping (%s) only applies to ONNX teachers", path, mapping)
	}
	return LoadCheckpointTeacher(path)
}

// checkpointTeacher is a gidedge detector run in evaluation mode without
// recording gradients.
type checkpointTeacher struct {
	path string
	d    *models.Detector
}

// LoadCheckpointTeacher loads a gidedge checkpoint (best.safetensors,
// last.safetensors) as a frozen teacher.
func LoadCheckpointTeacher(path string) (Teacher, error) {
	d, _, _, err := models.LoadCheckpoint(path)
	if err != nil {
		return nil, fmt.Errorf("distill: teacher: %w", err)
	}
	return NewDetectorTeacher(d, path), nil
}

// NewDetectorTeacher freezes d (its parameters stop requiring gradients)
// and uses it as a teacher; name appears in logs.
func NewDetectorTeacher(d *models.Detector, name string) Teacher {
	nn.SetTrainable(d, false)
	return &checkpointTeacher{path: name, d: d}
}

func (t *checkpointTeacher) Config() models.Config { return t.d.Config }

func (t *checkpointTeacher) Describe() string {
	return fmt.Sprintf("checkpoint %s (%s, %d classes)", t.path, t.d.Config.Name, t.d.Config.NumClasses)
}

func (t *checkpointTeacher) Forward(_ context.Context, x *engine.Tensor) (*models.Outputs, error) {
	var out *models.Outputs
	engine.NoGrad(func() { out = t.d.Forward(x, false) })
	return out, nil
}

func (t *checkpointTeacher) Close() error { return nil }

// ROIHeadTeacher is a two-stage teacher whose second stage can run on
// regions the distiller chooses (the general instances), as GID's
// response distillation of a two-stage pair needs. A gidedge checkpoint of
// the two-stage family is one; an ONNX model is not.
type ROIHeadTeacher interface {
	Teacher
	// ROIHead runs the teacher's box head, without gradients, on its own
	// pyramid features (from Forward) for rois (K×5: batch index, x1, y1,
	// x2, y2 in input pixels): class logits [K, K+1] and class-specific
	// deltas [K, 4·K].
	ROIHead(features []*engine.Tensor, rois []float32) (cls, reg *engine.Tensor, err error)
}

func (t *checkpointTeacher) ROIHead(features []*engine.Tensor, rois []float32) (cls, reg *engine.Tensor, err error) {
	if !t.d.Config.TwoStage() {
		return nil, nil, fmt.Errorf("%w: teacher %s is a %s detector: it has no box head", ErrLayout, t.path, t.d.Config.Family)
	}
	engine.NoGrad(func() { cls, reg = t.d.ROIHeadForward(features, rois) })
	return cls, reg, nil
}

// CheckLayout reports how a teacher's config differs from the student's in
// what distillation relies on: the head family, the pyramid levels, the
// classes, the anchors and box coding (RetinaNet and the two-stage
// family's RPN; its box head's coder weights too) and the input
// preprocessing that must be shared (resize mode and padding; mean and std
// may differ, the input is converted). A teacher config with num_classes 0
// (a mapping file's named config) leaves the class count to the shape check
// of the first batch. Errors wrap ErrLayout.
func CheckLayout(teacher, student models.Config) error {
	var diffs []string
	add := func(format string, args ...any) { diffs = append(diffs, fmt.Sprintf(format, args...)) }
	if teacher.Family != student.Family {
		add("head family: teacher %q, student %q", teacher.Family, student.Family)
	}
	if !slices.Equal(teacher.FPN.Levels, student.FPN.Levels) {
		add("pyramid levels: teacher %v (strides %v), student %v (strides %v)", teacher.FPN.Levels, teacher.Strides(), student.FPN.Levels, student.Strides())
	}
	if teacher.NumClasses != 0 && teacher.NumClasses != student.NumClasses {
		add("class count: teacher %d %v, student %d %v", teacher.NumClasses, teacher.ClassNames, student.NumClasses, student.ClassNames)
	} else if len(teacher.ClassNames) > 0 && len(student.ClassNames) > 0 && !slices.Equal(teacher.ClassNames, student.ClassNames) {
		add("class names: teacher %v, student %v", teacher.ClassNames, student.ClassNames)
	}
	if teacher.Family == student.Family && teacher.Family != models.FamilyFCOS {
		ta, sa := teacher.Anchors, student.Anchors
		if !slices.Equal(ta.Sizes, sa.Sizes) || !slices.Equal(ta.Ratios, sa.Ratios) || !slices.Equal(ta.Scales, sa.Scales) {
			add("anchors: teacher sizes %v ratios %v scales %v, student sizes %v ratios %v scales %v", ta.Sizes, ta.Ratios, ta.Scales, sa.Sizes, sa.Ratios, sa.Scales)
		}
		if teacher.Loss.BoxCoderWeights != student.Loss.BoxCoderWeights {
			add("box coder weights: teacher %v, student %v (box regressions would not be comparable)", teacher.Loss.BoxCoderWeights, student.Loss.BoxCoderWeights)
		}
	}
	if teacher.TwoStage() && student.TwoStage() && teacher.ROIHead != nil && student.ROIHead != nil &&
		teacher.ROIHead.BoxCoderWeights != student.ROIHead.BoxCoderWeights {
		add("box head coder weights: teacher %v, student %v (class-specific deltas would not be comparable)", teacher.ROIHead.BoxCoderWeights, student.ROIHead.BoxCoderWeights)
	}
	if teacher.Input.Resize != student.Input.Resize || teacher.Input.PadValue != student.Input.PadValue {
		add("input resize: teacher %s pad %v, student %s pad %v (both see the same batch)", teacher.Input.Resize, teacher.Input.PadValue, student.Input.Resize, student.Input.PadValue)
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: teacher %q vs student %q: %s", ErrLayout, teacher.Name, student.Name, strings.Join(diffs, "; "))
	}
	return nil
}

// checkOutputs compares the teacher's outputs for a batch with the
// student's, level by level, and names the first tensor that differs.
func checkOutputs(t, s *models.Outputs, strides []int) error {
	if len(t.Features) != len(s.Features) || len(t.ClsLogits) != len(s.ClsLogits) || len(t.BoxRegs) != len(s.BoxRegs) {
		return fmt.Errorf("%w: teacher gives %d feature, %d cls and %d box levels, student %d, %d and %d",
			ErrLayout, len(t.Features), len(t.ClsLogits), len(t.BoxRegs), len(s.Features), len(s.ClsLogits), len(s.BoxRegs))
	}
	if (len(t.Centerness) > 0) != (len(s.Centerness) > 0) {
		return fmt.Errorf("%w: teacher has %d centerness levels, student %d", ErrLayout, len(t.Centerness), len(s.Centerness))
	}
	for l := range s.ClsLogits {
		stride := 0
		if l < len(strides) {
			stride = strides[l]
		}
		pairs := []struct {
			name string
			t, s *engine.Tensor
			all  bool // compare channels too
		}{
			{"cls_logits", t.ClsLogits[l], s.ClsLogits[l], true},
			{"box_reg", t.BoxRegs[l], s.BoxRegs[l], true},
			{"feature", t.Features[l], s.Features[l], false},
		}
		if len(s.Centerness) > 0 {
			pairs = append(pairs, struct {
				name string
				t, s *engine.Tensor
				all  bool
			}{"centerness", t.Centerness[l], s.Centerness[l], true})
		}
		for _, p := range pairs {
			ts, ss := p.t.Shape(), p.s.Shape()
			same := len(ts) == 4 && len(ss) == 4 && ts[0] == ss[0] && ts[2] == ss[2] && ts[3] == ss[3] && (!p.all || ts[1] == ss[1])
			if !same {
				what := "shape"
				if p.name == "cls_logits" && len(ts) == 4 && len(ss) == 4 && ts[1] != ss[1] {
					what = "channels (anchors × classes)"
				}
				return fmt.Errorf("%w: level %d (stride %d) %s %s: teacher %v, student %v", ErrLayout, l, stride, p.name, what, ts, ss)
			}
		}
	}
	return nil
}
