package export

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gidedge/gidedge/onnxgraph"
)

// yoloxInputs returns n smooth BGR 0–255 images of size×size with noise:
// enough structure for the batch-norm statistics to mean something.
func yoloxInputs(n, size int, seed uint64) [][]float32 {
	r := rand.New(rand.NewPCG(seed, 3))
	out := make([][]float32, n)
	for i := range out {
		x := make([]float32, 3*size*size)
		fx, fy := r.Float64()*0.4, r.Float64()*0.4
		for c := range 3 {
			base := r.Float64() * 255
			for y := range size {
				for xx := range size {
					v := base + 70*math.Sin(fx*float64(xx)+fy*float64(y)+float64(c)) + 15*r.NormFloat64()
					x[(c*size+y)*size+xx] = float32(math.Max(0, math.Min(255, v)))
				}
			}
		}
		out[i] = x
	}
	return out
}

func TestWriteYOLOXLike(t *testing.T) {
	cfg := YOLOXLike{Width: 0.0625, Size: 64, Classes: 3, Seed: 5, Threads: 1}
	calib := yoloxInputs(4, cfg.Size, 1)
	m, err := WriteYOLOXLike(cfg, calib)
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range m.Graph.Node {
		ops[n.OpType]++
	}
	if onnxgraph.Opset(m) != 11 || ops["Slice"] != 4 || ops["MaxPool"] != 3 || ops["Resize"] != 2 || ops["Sigmoid"] < 50 || ops["BatchNormalization"] != 0 {
		t.Errorf("opset %d, ops %v: want opset 11, a 4-Slice Focus stem, SPP's 3 max-pools, 2 Resizes, SiLU everywhere, BN folded", onnxgraph.Opset(m), ops)
	}
	data, err := onnxgraph.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runORT(data, calib[0], []int64{1, 3, 64, 64}, []string{"output"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	rows := cfg.Positions()
	if got := out[0].shape; len(got) != 3 || got[1] != int64(rows) || got[2] != 8 {
		t.Fatalf("output shape %v, want [1 %d 8]", got, rows)
	}
	// Columns 4 and 5.. are sigmoid scores, mostly low; 0..3 raw boxes.
	var boxAbs, scoreSum float64
	for i := range rows {
		row := out[0].data[i*8 : (i+1)*8]
		for j, v := range row {
			if math.IsNaN(float64(v)) {
				t.Fatalf("row %d column %d is NaN", i, j)
			}
			if j < 4 {
				boxAbs += math.Abs(float64(v))
			} else {
				if v < 0 || v >= 1 {
					t.Fatalf("row %d score column %d = %v, want a probability", i, j, v)
				}
				scoreSum += float64(v)
			}
		}
	}
	if boxAbs == 0 || scoreSum/float64(rows*4) > 0.2 {
		t.Errorf("box mean |v| %v, mean score %v: want non-zero boxes and mostly low scores", boxAbs/float64(rows*4), scoreSum/float64(rows*4))
	}

	// The folded batch norms make each measured channel's pre-activation
	// have the drawn mean β and spread γ on the calibration images.
	stem := "backbone.stem.conv.conv"
	probe := onnxgraph.Clone(m)
	probe.Graph.Input[0] = valueInfo(InputName, 0, 0, 3, 64, 64) // dynamic batch
	pruneToOutput(probe.Graph, stem)
	data, _ = onnxgraph.Marshal(probe)
	batch := append(append(append(append([]float32(nil), calib[0]...), calib[1]...), calib[2]...), calib[3]...)
	st, err := runORT(data, batch, []int64{4, 3, 64, 64}, []string{stem}, 1)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ = cfg.withDefaults()
	w := &yoloxWriter{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x9010c5)), layers: map[string]*convLayer{}}
	if _, err := w.build(1); err != nil {
		t.Fatal(err)
	}
	l := w.layers["backbone.stem.conv"]
	mean, variance := channelMoments(st[0].data, 4, l.cout)
	for c := range l.cout {
		g := float64(l.gamma[c])
		if math.Abs(mean[c]-float64(l.beta[c])) > 1e-3*(1+g) || math.Abs(math.Sqrt(variance[c])-g) > 1e-2*g {
			t.Errorf("stem channel %d: mean %.4f std %.4f, want β %.4f γ %.4f", c, mean[c], math.Sqrt(variance[c]), l.beta[c], g)
		}
	}

	again, err := WriteYOLOXLike(cfg, calib)
	if err != nil {
		t.Fatal(err)
	}
	second, _ := onnxgraph.Marshal(again)
	first, _ := onnxgraph.Marshal(m)
	if string(first) != string(second) {
		t.Error("the same config, seed and images gave different bytes")
	}
}

func TestWriteYOLOXLikeRejects(t *testing.T) {
	calib := yoloxInputs(1, 64, 1)
	for _, cfg := range []YOLOXLike{
		{Width: 0, Size: 64, Classes: 1},
		{Width: 0.25, Size: 60, Classes: 1},
		{Width: 0.25, Size: 64, Classes: 0},
		{Width: 0.25, Size: 64, Classes: 1, Opset: 9},
	} {
		if _, err := WriteYOLOXLike(cfg, calib); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if _, err := WriteYOLOXLike(YOLOXLike{Width: 0.25, Size: 32, Classes: 1}, calib); err == nil {
		t.Error("a 64×64 image for a 32×32 model: no error")
	}
}
