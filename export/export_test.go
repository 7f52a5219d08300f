package export

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gidedge/gidedge/engine"
	"github.com/gidedge/gidedge/engine/nn"
	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/models"
	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
	"github.com/gidedge/gidedge/ort"
)

var classNames = []string{"cat", "dog", "bird"}

// tinyConfig returns a 64-pixel detector of the family and backbone. The
// mobilenetv2 variants also use depthwise pyramid and head convolutions,
// extra pyramid levels and the remaining activations, so that together the
// four cases cover every module and activation the exporter knows.
func tinyConfig(t testing.TB, family, backbone string) models.Config {
	t.Helper()
	cfg, err := models.Named(family + "-tiny")
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.WithClasses(classNames)
	switch {
	case backbone == models.BackboneResNet && family == models.FamilyRetinaNet:
		// As shipped: relu everywhere, P3–P5.
	case backbone == models.BackboneResNet:
		cfg.Backbone.Act = nn.ActSiLU
		cfg.Head.Act = nn.ActLeakyReLU
	case backbone == models.BackboneMobileNetV2:
		cfg.Backbone = models.BackboneConfig{
			Type: models.BackboneMobileNetV2, Stem: []int{8}, Act: nn.ActReLU6,
			Stages: []models.StageConfig{
				{Out: 8, Depth: 1, Stride: 1, Expand: 1},
				{Out: 12, Depth: 2, Stride: 2, Expand: 2},
				{Out: 16, Depth: 2, Stride: 2, Expand: 2},
				{Out: 16, Depth: 1, Stride: 2, Expand: 2},
				{Out: 24, Depth: 1, Stride: 2, Expand: 2},
			},
		}
		cfg.FPN.Depthwise = true
		cfg.Head.Depthwise = true
		cfg.Head.Convs = 2
		// Inputs large enough that no stride-2 convolution has a 1-pixel
		// output: the engine's CPU im2col fast path panics on those.
		if family == models.FamilyRetinaNet {
			cfg.Input.Size = 160
			cfg.Head.Act = nn.ActHardSwish
			cfg.FPN.Levels = []int{3, 4, 5, 6, 7}
			cfg.Anchors.Sizes = []float32{12, 24, 48, 96, 192}
			cfg.Anchors.Ratios = []float32{0.5, 1, 2}
			cfg.Anchors.Scales = []float32{1}
			cfg.Loss.BoxCoderWeights = [4]float32{10, 10, 5, 5}
		} else {
			cfg.Input.Size = 96
			cfg.Backbone.Act = nn.ActHardSwish
			cfg.Head.Act = nn.ActReLU6
			cfg.FPN.Levels = []int{3, 4, 5, 6}
			cfg.Assigner.SizeRanges = [][2]float32{{0, 16}, {16, 32}, {32, 64}, {64, 1e5}}
		}
	default:
		t.Fatalf("unknown backbone %q", backbone)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// tinyDetector builds a detector with every batch norm's statistics and
// affine parameters drawn at random (so folding is exercised, not the
// identity of a fresh model) and head outputs scaled up so scores and boxes
// vary across positions.
func tinyDetector(t testing.TB, cfg models.Config, seed uint64) *models.Detector {
	t.Helper()
	d, err := models.New(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(seed, 7))
	d.Visit("", func(name string, x *engine.Tensor, _ bool) {
		v := x.Data()
		head := strings.HasPrefix(name, "head.cls_out") || strings.HasPrefix(name, "head.reg_out") || strings.HasPrefix(name, "head.centerness")
		switch {
		case strings.HasSuffix(name, "running_var"):
			for i := range v {
				v[i] = 0.5 + 1.5*rng.Float32()
			}
		case strings.HasSuffix(name, "running_mean"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.2)
			}
		case head && strings.HasSuffix(name, "weight"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.05)
			}
		case head && strings.HasSuffix(name, "bias"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.3)
			}
		case x.Rank() == 1 && strings.HasSuffix(name, "weight"):
			for i := range v {
				v[i] = 0.5 + rng.Float32()
			}
		case x.Rank() == 1 && strings.HasSuffix(name, "bias"):
			for i := range v {
				v[i] = float32(rng.NormFloat64() * 0.1)
			}
		}
	})
	return d
}

func needORT(t testing.TB) {
	t.Helper()
	if err := ort.Init(); err != nil {
		t.Fatalf("ONNX Runtime is needed (scripts/setup.sh installs it): %v", err)
	}
}

// TestExportParity exports every family × backbone in every output mode and
// checks that the written file matches the engine (Export refuses to write
// otherwise) and declares the contract's outputs.
func TestExportParity(t *testing.T) {
	needORT(t)
	modes := []struct {
		name     string
		outputs  string
		features bool
	}{
		{"decoded", infer.OutputsDecoded, false},
		{"raw", infer.OutputsRaw, false},
		{"decoded+features", infer.OutputsDecoded, true},
	}
	for fi, family := range []string{models.FamilyRetinaNet, models.FamilyFCOS} {
		for bi, backbone := range []string{models.BackboneResNet, models.BackboneMobileNetV2} {
			cfg := tinyConfig(t, family, backbone)
			d := tinyDetector(t, cfg, uint64(10*fi+bi+1))
			for _, mode := range modes {
				t.Run(family+"/"+backbone+"/"+mode.name, func(t *testing.T) {
					out := filepath.Join(t.TempDir(), "model.onnx")
					rep, err := Export(d, out, Options{Outputs: mode.outputs, WithFeatures: mode.features, Threads: 1})
					if err != nil {
						t.Fatal(err)
					}
					if !rep.Parity.OK() || rep.Parity.Worst > DefaultTolerance {
						t.Fatalf("parity %+v", rep.Parity)
					}
					t.Logf("worst relative difference %.2e on %s", rep.Parity.Worst, rep.Parity.WorstOutput)
					want := wantOutputs(cfg, mode.outputs, mode.features)
					var got []string
					for _, o := range rep.Outputs {
						got = append(got, o.Name)
					}
					if !slices.Equal(got, want) {
						t.Fatalf("outputs %v, want %v", got, want)
					}
					m, err := onnxgraph.Load(out)
					if err != nil {
						t.Fatal(err)
					}
					checkGraph(t, m.Graph, cfg)
				})
			}
		}
	}
}

func wantOutputs(cfg models.Config, outputs string, features bool) []string {
	var want []string
	if outputs == infer.OutputsDecoded {
		want = []string{BoxesName, ScoresName}
		if cfg.Family == models.FamilyFCOS {
			want = append(want, CenternessName)
		}
		if features {
			want = append(want, FeatureNames(cfg)...)
			want = append(want, RawNames(cfg)...)
		}
		return want
	}
	want = RawNames(cfg)
	if features {
		want = append(want, FeatureNames(cfg)...)
	}
	return want
}

// checkGraph asserts the inference form: no BatchNormalization left, only
// standard-domain ops, a symbolic batch on the input and outputs.
func checkGraph(t *testing.T, g *onnxpb.GraphProto, cfg models.Config) {
	t.Helper()
	convs := 0
	for _, n := range g.Node {
		if n.Domain != "" {
			t.Errorf("%s is in domain %q, want the standard one", onnxgraph.Describe(n), n.Domain)
		}
		switch n.OpType {
		case "BatchNormalization":
			t.Errorf("%s left in the graph, want it folded", onnxgraph.Describe(n))
		case "Conv":
			convs++
		}
	}
	if convs == 0 {
		t.Error("no Conv nodes")
	}
	if len(g.Input) != 1 || g.Input[0].Name != InputName {
		t.Fatalf("inputs %v, want one %q", g.Input, InputName)
	}
	for _, v := range append([]*onnxpb.ValueInfoProto{g.Input[0]}, g.Output...) {
		dim := v.GetType().GetTensorType().GetShape().GetDim()
		if len(dim) == 0 || dim[0].GetDimParam() != "batch" {
			t.Errorf("%s: first dimension %v, want the symbolic \"batch\"", v.Name, dim)
		}
	}
	_, dims, _ := onnxgraph.TensorType(g.Input[0])
	if want := []int64{-1, 3, int64(cfg.Input.Size), int64(cfg.Input.Size)}; !slices.Equal(dims, want) {
		t.Errorf("input shape %v, want %v", dims, want)
	}
}
