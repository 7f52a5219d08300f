package distill

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/export"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxpb"
)

// exportTeacher writes d as an ONNX teacher the way `gidedge export
// --outputs raw --with-features` does.
func exportTeacher(t *testing.T, d *models.Detector, batch int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "teacher.onnx")
	if _, err := export.Export(d, path, export.Options{Outputs: "raw", WithFeatures: true, Batch: batch}); err != nil {
		t.Fatal(err)
	}
	return path
}

func maxRelDiff(a, b *engine.Tensor) float64 {
	var diff, scale float64
	bv := b.ToHost()
	for i, v := range a.ToHost() {
		diff = max(diff, math.Abs(float64(v-bv[i])))
		scale = max(scale, math.Abs(float64(v)))
	}
	return diff / max(scale, 1e-12)
}

// TestONNXTeacher exports a tiny teacher of each family with its features
// and checks that the ONNX teacher gives the engine's outputs and the same
// distillation loss as the checkpoint teacher, with a dynamic batch and
// with a fixed batch of 1 (run image by image).
func TestONNXTeacher(t *testing.T) {
	for _, family := range []string{"retinanet-tiny", "fcos-tiny"} {
		for _, batch := range []int{0, 1} {
			t.Run(family+"/batch"+string(rune('0'+batch)), func(t *testing.T) {
				tm, sm := tinyPair(t, family)
				path := exportTeacher(t, tm, batch)
				teacher, err := OpenTeacher(path, "")
				if err != nil {
					t.Fatal(err)
				}
				defer teacher.Close()
				if teacher.Config().Name != tm.Config.Name || teacher.Config().NumClasses != 3 {
					t.Fatalf("ONNX teacher config %s with %d classes, want %s with 3", teacher.Config().Name, teacher.Config().NumClasses, tm.Config.Name)
				}
				x, targets := tinyBatch()
				got, err := teacher.Forward(context.Background(), x)
				if err != nil {
					t.Fatal(err)
				}
				var want *models.Outputs
				engine.NoGrad(func() { want = tm.Forward(x, false) })
				groups := map[string][2][]*engine.Tensor{
					"feature": {got.Features, want.Features}, "cls_logits": {got.ClsLogits, want.ClsLogits},
					"box_reg": {got.BoxRegs, want.BoxRegs}, "centerness": {got.Centerness, want.Centerness},
				}
				for name, g := range groups {
					if len(g[0]) != len(g[1]) {
						t.Fatalf("%s: %d levels from ONNX, %d from the engine", name, len(g[0]), len(g[1]))
					}
					for l := range g[0] {
						if d := maxRelDiff(g[1][l], g[0][l]); d > 1e-4 {
							t.Errorf("%s_%d differs from the engine by %.2g of its scale", name, l, d)
						}
					}
				}
				small := engine.Zeros(1, 3, 32, 32)
				if _, err := teacher.Forward(context.Background(), small); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "takes 64x64 inputs, the batch is 32x32") {
					t.Fatalf("32x32 batch for a 64x64 teacher: %v, want a layout error naming both sizes", err)
				}
				stepLoss := func(teacher Teacher) float32 {
					d, err := New(teacher, sm, DefaultOptions(), 1)
					if err != nil {
						t.Fatal(err)
					}
					var out *models.Outputs
					engine.NoGrad(func() { out = sm.Forward(x, false) })
					st, err := d.Step(context.Background(), x, out, targets)
					if err != nil {
						t.Fatal(err)
					}
					return st.Loss.Item()
				}
				a, b := stepLoss(teacher), stepLoss(NewDetectorTeacher(tm, "engine"))
				if math.Abs(float64(a-b)) > 1e-3*math.Abs(float64(b)) {
					t.Errorf("distillation loss %v with the ONNX teacher, %v with the engine teacher", a, b)
				}
			})
		}
	}
}

// TestONNXTeacherMapping renames an exported teacher's tensors and drops
// its config metadata, as a teacher from another framework would have, and
// describes it with a mapping file.
func TestONNXTeacherMapping(t *testing.T) {
	tm, sm := tinyPair(t, "retinanet-tiny")
	m, err := export.Build(tm, export.Options{Outputs: "raw", WithFeatures: true})
	if err != nil {
		t.Fatal(err)
	}
	g := m.Proto.Graph
	rename := map[string]string{}
	for _, o := range g.Output {
		rename[o.Name] = "other/" + o.Name
	}
	for _, o := range g.Output {
		o.Name = rename[o.Name]
	}
	for _, n := range g.Node {
		for i, o := range n.Output {
			if r, ok := rename[o]; ok {
				n.Output[i] = r
			}
		}
		for i, in := range n.Input {
			if r, ok := rename[in]; ok {
				n.Input[i] = r
			}
		}
	}
	var kept []*onnxpb.StringStringEntryProto
	for _, p := range m.Proto.MetadataProps {
		if p.Key != MetaConfig && p.Key != "gidedge" {
			kept = append(kept, p)
		}
	}
	m.Proto.MetadataProps = kept
	dir := t.TempDir()
	path := filepath.Join(dir, "foreign.onnx")
	data, err := proto.Marshal(m.Proto)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}

	// Without a mapping the missing config is named.
	if _, err := OpenTeacher(path, ""); err == nil || !strings.Contains(err.Error(), MetaConfig) {
		t.Fatalf("error %v, want one naming the missing %q metadata", err, MetaConfig)
	}
	cfgPath := filepath.Join(dir, "teacher-config.json")
	if err := os.WriteFile(cfgPath, tm.Config.JSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	writeMap := func(om OutputMap) string {
		b, _ := json.Marshal(om)
		p := filepath.Join(dir, "map.json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	names := func(prefix string) []string {
		return []string{"other/" + prefix + "_0", "other/" + prefix + "_1", "other/" + prefix + "_2"}
	}
	good := OutputMap{Config: "teacher-config.json", Features: names("feature"), ClsLogits: names("cls_logits"), BoxRegs: names("box_reg")}
	teacher, err := OpenTeacher(path, writeMap(good))
	if err != nil {
		t.Fatal(err)
	}
	defer teacher.Close()
	x, targets := tinyBatch()
	d, err := New(teacher, sm, DefaultOptions(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var out *models.Outputs
	engine.NoGrad(func() { out = sm.Forward(x, false) })
	if _, err := d.Step(context.Background(), x, out, targets); err != nil {
		t.Fatal(err)
	}

	bad := good
	bad.BoxRegs = []string{"other/box_reg_0", "box_reg_9", "other/box_reg_2"}
	if _, err := OpenTeacher(path, writeMap(bad)); err == nil || !strings.Contains(err.Error(), `no output "box_reg_9"`) {
		t.Fatalf("error %v, want one naming the missing output", err)
	}
	short := good
	short.Features = short.Features[:2]
	if _, err := OpenTeacher(path, writeMap(short)); err == nil || !strings.Contains(err.Error(), "2 features outputs named") {
		t.Fatalf("error %v, want one about the level count", err)
	}
	// A config whose class count differs from the student's is refused.
	two := tm.Config.WithClasses([]string{"a", "b"})
	if err := os.WriteFile(cfgPath, two.JSON(), 0o644); err != nil {
		t.Fatal(err)
	}
	teacher2, err := OpenTeacher(path, writeMap(good))
	if err != nil {
		t.Fatal(err)
	}
	defer teacher2.Close()
	if _, err := New(teacher2, sm, DefaultOptions(), 1); err == nil || !strings.Contains(err.Error(), "class count: teacher 2") {
		t.Fatalf("error %v, want a class-count layout error", err)
	}
}

// TestONNXTwoStageTeacher: a two-stage export with its features and raw
// RPN maps serves methods that need no box head (GID without response,
// FitNet) with the checkpoint teacher's loss, and is refused, by name,
// for response distillation.
func TestONNXTwoStageTeacher(t *testing.T) {
	tm, sm := tinyPair(t, "faster-rcnn-tiny")
	teacher, err := OpenTeacher(exportTeacher(t, tm, 0), "")
	if err != nil {
		t.Fatal(err)
	}
	defer teacher.Close()
	x, targets := tinyBatch()
	noResponse := DefaultOptions()
	noResponse.Response = false
	fitnet := DefaultOptions()
	fitnet.Method = MethodFitNet
	for _, opts := range []Options{noResponse, fitnet} {
		loss := func(teacher Teacher) float32 {
			d, err := New(teacher, sm, opts, 1)
			if err != nil {
				t.Fatal(err)
			}
			var out *models.Outputs
			engine.NoGrad(func() { out = sm.Forward(x, false) })
			st, err := d.Step(context.Background(), x, out, targets)
			if err != nil {
				t.Fatal(err)
			}
			return st.Loss.Item()
		}
		a, b := loss(teacher), loss(NewDetectorTeacher(tm, "engine"))
		if math.Abs(float64(a-b)) > 1e-3*math.Abs(float64(b)) {
			t.Errorf("%s: loss %v with the ONNX teacher, %v with the engine teacher", opts.Method, a, b)
		}
	}
	if _, err := New(teacher, sm, DefaultOptions(), 1); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "box head") {
		t.Fatalf("GID with response from an ONNX two-stage teacher: %v, want ErrLayout naming the box head", err)
	}
}
