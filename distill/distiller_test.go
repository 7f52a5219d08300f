package distill

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/dataset"
	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/enginetest"
	"github.com/gidedge/gidedge/models"
)

var tinyClasses = []string{"disc", "ring", "star"}

// tinyPair returns a teacher (wider FPN and head) and a student of the tiny
// config of a family, both for tinyClasses.
func tinyPair(t *testing.T, name string) (teacher, student *models.Detector) {
	t.Helper()
	cfg, err := models.Named(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithClasses(tinyClasses)
	tcfg := cfg
	tcfg.Name = name + "-teacher"
	tcfg.FPN.Channels, tcfg.Head.Channels = 24, 24
	if teacher, err = models.New(tcfg, 11); err != nil {
		t.Fatal(err)
	}
	if student, err = models.New(cfg, 12); err != nil {
		t.Fatal(err)
	}
	return teacher, student
}

func tinyBatch() (*engine.Tensor, [][]dataset.Target) {
	rng := rand.New(rand.NewPCG(3, 4))
	x := engine.RandN(rng, 1, 2, 3, 64, 64)
	targets := [][]dataset.Target{
		{{Box: dataset.Box{X1: 8, Y1: 10, X2: 30, Y2: 34}, Class: 0}, {Box: dataset.Box{X1: 36, Y1: 30, X2: 60, Y2: 62}, Class: 2}},
		{{Box: dataset.Box{X1: 20, Y1: 4, X2: 40, Y2: 20}, Class: 1}},
	}
	return x, targets
}

func TestDistillerMethods(t *testing.T) {
	gid := DefaultOptions()
	gtOnly := gid
	gtOnly.GIMode = GIModeGTOnly
	batch := gid
	batch.RelationScope = RelationPerBatch
	negative := gid
	negative.GIMode = GIModeNegative
	only := func(m string) Options { o := gid; o.Method = m; return o }
	cases := []struct {
		name  string
		opts  Options
		parts []string
	}{
		{"gid", gid, []string{PartFeature, PartRelation, PartResponseCls, PartResponseReg}},
		{"gid-gt-only", gtOnly, []string{PartFeature, PartRelation, PartResponseCls, PartResponseReg}},
		{"gid-per-batch", batch, []string{PartFeature, PartRelation, PartResponseCls, PartResponseReg}},
		{"gid-negative", negative, []string{PartFeature, PartRelation, PartResponseCls, PartResponseReg}},
		{"fitnet", only(MethodFitNet), []string{PartFitNet}},
		{"fine-grained", only(MethodFineGrained), []string{PartFineGrained}},
		{"response-kd", only(MethodResponseKD), []string{PartKDCls, PartKDReg}},
	}
	for _, family := range []string{"retinanet-tiny", "fcos-tiny", "faster-rcnn-tiny"} {
		tm, sm := tinyPair(t, family)
		x, targets := tinyBatch()
		for _, c := range cases {
			if family == "faster-rcnn-tiny" && c.opts.Method == MethodResponseKD {
				// A two-stage pair also distils its box heads.
				c.parts = append(slices.Clone(c.parts), PartKDROICls, PartKDROIReg)
			}
			t.Run(family+"/"+c.name, func(t *testing.T) {
				d, err := New(NewDetectorTeacher(tm, "tiny"), sm, c.opts, 1)
				if err != nil {
					t.Fatal(err)
				}
				out := sm.Forward(x, true)
				st, err := d.Step(context.Background(), x, out, targets)
				if err != nil {
					t.Fatal(err)
				}
				var keys []string
				for k, v := range st.Parts {
					keys = append(keys, k)
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < 0 {
						t.Errorf("part %s = %v, want finite and ≥ 0", k, v)
					}
				}
				slices.Sort(keys)
				want := slices.Sorted(slices.Values(c.parts))
				if !slices.Equal(keys, want) {
					t.Fatalf("parts %v, want %v", keys, want)
				}
				if st.Loss == nil || st.Loss.Item() <= 0 {
					t.Fatalf("loss %v, want a positive scalar", st.Loss)
				}
				if c.opts.Method == MethodGID {
					for i, gis := range st.GIs {
						if len(gis) == 0 || len(gis) > c.opts.TopK {
							t.Errorf("image %d has %d GIs, want 1..%d", i, len(gis), c.opts.TopK)
						}
						for _, g := range gis {
							if c.opts.GIMode == GIModeNegative && g.Type != GINegative {
								t.Errorf("gi-mode negative kept a %s GI", g.Type)
							}
						}
					}
				}
				st.Loss.Backward()
				if m := d.Module(); m != nil {
					a := m.(*Adapter)
					var norm float64
					for _, c := range a.Convs {
						for _, g := range c.Weight.GradToHost() {
							norm += float64(g) * float64(g)
						}
					}
					if !(norm > 0) {
						t.Errorf("adaptation layers got no gradient")
					}
				}
				st.Loss.Release()
			})
		}
	}
}

// TestDistillerGradients checks the gradient of the whole GID feature and
// relation path (level choice, adaptation conv, ROIAlign on the student
// maps, regrouping into GI order, normalised distances) by finite
// differences, with respect to the student's FPN features and the
// adaptation weights. The head outputs are fixed leaves, so GI selection
// does not move while the features are perturbed.
func TestDistillerGradients(t *testing.T) {
	tm, sm := tinyPair(t, "retinanet-tiny")
	x, targets := tinyBatch()
	var base *models.Outputs
	engine.NoGrad(func() { base = sm.Forward(x, false) })
	out := &models.Outputs{InputH: 64, InputW: 64, ClsLogits: base.ClsLogits, BoxRegs: base.BoxRegs}
	for _, f := range base.Features {
		out.Features = append(out.Features, f.Clone().SetRequiresGrad(true))
	}
	for _, scope := range []string{RelationPerImage, RelationPerBatch} {
		opts := DefaultOptions()
		opts.Response = false
		opts.RelationScope = scope
		opts.FeatureWeight, opts.RelationWeight = 1, 1
		d, err := New(NewDetectorTeacher(tm, "tiny"), sm, opts, 1)
		if err != nil {
			t.Fatal(err)
		}
		a := d.Module().(*Adapter)
		inputs := append(slices.Clone(out.Features), a.Convs[0].Weight, a.Convs[1].Bias)
		enginetest.GradCheck(t, "GID feature+relation ("+scope+")", enginetest.Tolerance{Abs: 3e-3, Rel: 3e-2, Step: 1e-2, MaxElements: 24}, func() *engine.Tensor {
			st, err := d.Step(context.Background(), x, out, targets)
			if err != nil {
				t.Fatal(err)
			}
			return engine.Reshape(st.Loss, 1)
		}, inputs...)
	}
}

func TestCheckLayout(t *testing.T) {
	base, err := models.Named("retinanet-tiny")
	if err != nil {
		t.Fatal(err)
	}
	base = base.WithClasses(tinyClasses)
	fcos, _ := models.Named("fcos-tiny")
	fcos = fcos.WithClasses(tinyClasses)
	mutate := func(f func(c *models.Config)) models.Config {
		c := base
		c.Anchors.Sizes = slices.Clone(c.Anchors.Sizes)
		c.FPN.Levels = slices.Clone(c.FPN.Levels)
		f(&c)
		return c
	}
	cases := []struct {
		name    string
		teacher models.Config
		want    string
	}{
		{"classes", mutate(func(c *models.Config) { *c = c.WithClasses([]string{"a", "b"}) }), "class count: teacher 2"},
		{"class names", mutate(func(c *models.Config) { *c = c.WithClasses([]string{"a", "b", "c"}) }), "class names"},
		{"levels", mutate(func(c *models.Config) {
			c.FPN.Levels = []int{3, 4, 5, 6}
			c.Anchors.Sizes = append(c.Anchors.Sizes, 96)
		}), "pyramid levels: teacher [3 4 5 6]"},
		{"anchors", mutate(func(c *models.Config) { c.Anchors.Sizes[0] = 16 }), "anchors: teacher sizes [16 24 48]"},
		{"family", fcos, "head family"},
		{"resize", mutate(func(c *models.Config) { c.Input.Resize = models.ResizeStretch }), "input resize"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckLayout(c.teacher, base)
			if !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("CheckLayout error %v, want ErrLayout mentioning %q", err, c.want)
			}
		})
	}
	if err := CheckLayout(mutate(func(c *models.Config) { c.FPN.Channels = 64; c.Input.Mean[0] = 0.5 }), base); err != nil {
		t.Fatalf("channels and mean may differ, got %v", err)
	}
}

// TestTwoStageLayout: a two-stage pair must agree on its box head's box
// coding, and response distillation needs a teacher whose box head can
// run on the student's regions.
func TestTwoStageLayout(t *testing.T) {
	tm, sm := tinyPair(t, "faster-rcnn-tiny")
	tc := tm.Config
	h := *tc.ROIHead
	h.BoxCoderWeights = [4]float32{1, 1, 1, 1}
	tc.ROIHead = &h
	if err := CheckLayout(tc, sm.Config); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "box head coder weights") {
		t.Fatalf("CheckLayout = %v, want the box head's coder weights named", err)
	}
	fake := &fakeTeacher{cfg: tm.Config}
	for _, o := range []Options{DefaultOptions(), func() Options { o := DefaultOptions(); o.Method = MethodResponseKD; return o }()} {
		if _, err := New(fake, sm, o, 1); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "teacher's box head") {
			t.Fatalf("%s with a teacher without a box head: %v, want ErrLayout", o.Method, err)
		}
	}
	o := DefaultOptions()
	o.Response = false
	if _, err := New(fake, sm, o, 1); err != nil {
		t.Fatalf("GID without response needs no box head: %v", err)
	}
	o = DefaultOptions()
	o.Method = MethodFitNet
	if _, err := New(fake, sm, o, 1); err != nil {
		t.Fatalf("FitNet needs no box head: %v", err)
	}
}

// fakeTeacher returns fixed outputs and records its input.
type fakeTeacher struct {
	cfg   models.Config
	out   *models.Outputs
	input *engine.Tensor
}

func (f *fakeTeacher) Config() models.Config { return f.cfg }
func (f *fakeTeacher) Describe() string      { return "fake" }
func (f *fakeTeacher) Close() error          { return nil }
func (f *fakeTeacher) Forward(_ context.Context, x *engine.Tensor) (*models.Outputs, error) {
	f.input = x.Clone()
	return f.out, nil
}

func TestTeacherOutputChecks(t *testing.T) {
	tm, sm := tinyPair(t, "retinanet-tiny")
	x, targets := tinyBatch()
	var tout, sout *models.Outputs
	engine.NoGrad(func() { tout, sout = tm.Forward(x, false), sm.Forward(x, false) })

	// A teacher whose P4 map is the wrong size.
	bad := *tout
	bad.ClsLogits = slices.Clone(tout.ClsLogits)
	bad.ClsLogits[1] = engine.Zeros(2, tout.ClsLogits[1].Dim(1), 3, 3)
	d, err := New(&fakeTeacher{cfg: tm.Config, out: &bad}, sm, DefaultOptions(), 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.Step(context.Background(), x, sout, targets)
	if !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "level 1 (stride 16) cls_logits shape: teacher [2 6 3 3], student [2 6 4 4]") {
		t.Fatalf("error %v, want one naming level 1's cls_logits shapes", err)
	}

	// A teacher normalising its input differently gets converted input.
	cfg := tm.Config
	cfg.Input.Mean = [3]float32{0.5, 0.5, 0.5}
	cfg.Input.Std = [3]float32{0.5, 0.25, 1}
	ft := &fakeTeacher{cfg: cfg, out: tout}
	d, err = New(ft, sm, DefaultOptions(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Step(context.Background(), x, sout, targets); err != nil {
		t.Fatal(err)
	}
	s := sm.Config.Input
	xv, tv := x.ToHost(), ft.input.ToHost()
	for _, i := range []int{0, 64*64 + 5, 2*64*64 + 17, 3*64*64 + 1} {
		c := (i / (64 * 64)) % 3
		raw := xv[i]*s.Std[c] + s.Mean[c]
		want := (raw - cfg.Input.Mean[c]) / cfg.Input.Std[c]
		if got := tv[i]; math.Abs(float64(got-want)) > 1e-5 {
			t.Fatalf("teacher input[%d] = %v, want %v", i, got, want)
		}
	}
}

// TestImitationMask checks Wang et al.'s near-object mask on a box that is
// exactly one anchor: that anchor's cell is in the mask, with the cells
// whose anchors overlap the box by more than half as much, and nothing far
// away.
func TestImitationMask(t *testing.T) {
	tm, sm := tinyPair(t, "retinanet-tiny")
	d, err := New(NewDetectorTeacher(tm, "tiny"), sm, Options{Method: MethodFineGrained, FeatureWeight: 1, TopK: 1, PreTopK: 1, NMSIoU: 0.3, GIMode: GIModeAll, LevelS0: 48, ROISize: 2, RelationScope: RelationPerImage, FineGrainedThreshold: 0.5}, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := sm.Priors(64, 64)
	// Level 1 (stride 16, 4×4 cells, 2 anchors): cell (y 1, x 2), anchor 0.
	lv := p.Levels[1]
	r := lv.Start + (1*lv.W+2)*p.NumAnchors
	a := p.Anchors[4*r : 4*r+4]
	targets := [][]dataset.Target{{{Box: dataset.Box{X1: float64(a[0]), Y1: float64(a[1]), X2: float64(a[2]), Y2: float64(a[3])}}}}
	out := &models.Outputs{InputH: 64, InputW: 64, Features: []*engine.Tensor{engine.Zeros(1, 16, 8, 8), engine.Zeros(1, 16, 4, 4), engine.Zeros(1, 16, 2, 2)}}
	masks := d.imitationMasks(out, targets)
	if got := masks[1].ToHost()[1*4+2]; got != 1 {
		t.Fatalf("the anchor's own cell has mask %v, want 1", got)
	}
	if got := masks[1].ToHost()[3*4+0]; got != 0 {
		t.Fatalf("a far cell has mask %v, want 0", got)
	}
	total := 0
	for _, m := range masks {
		for _, v := range m.ToHost() {
			total += int(v)
		}
	}
	if total < 1 || total > 12 {
		t.Fatalf("%d masked cells, want a few around the box", total)
	}
}
