package quantize

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gidedge/gidedge/onnxgraph"
	"github.com/gidedge/gidedge/onnxpb"
)

func randomTensor(r *rand.Rand, name string, scale float64, dims ...int64) *onnxpb.TensorProto {
	v := make([]float32, onnxgraph.NumElements(dims))
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return onnxgraph.Float32Tensor(name, dims, v)
}

// tinyDetector builds a small CNN with the shapes of a detector: a stem
// Conv+Relu, a depthwise Conv+LeakyRelu, MaxPool, two 1×1 branches joined by
// Add and Concat, a score head (Conv→Sigmoid) and a pooled Gemm classifier.
// Input "image" [1,3,16,16]; outputs "scores" [1,2,8,8] and "logits" [1,5].
func tinyDetector(seed uint64, opset int64) *onnxpb.ModelProto {
	r := rand.New(rand.NewPCG(seed, 7))
	n := onnxgraph.NewNode
	nodes := []*onnxpb.NodeProto{
		n("Conv", "stem", []string{"image", "w1", "b1"}, []string{"a0"}, onnxgraph.AttrInts("pads", 1, 1, 1, 1)),
		n("Relu", "stem_relu", []string{"a0"}, []string{"a"}),
		n("Conv", "dw", []string{"a", "w2", "b2"}, []string{"b0"}, onnxgraph.AttrInts("pads", 1, 1, 1, 1), onnxgraph.AttrInt("group", 8)),
		n("LeakyRelu", "dw_act", []string{"b0"}, []string{"b"}, onnxgraph.AttrFloat("alpha", 0.1)),
		n("MaxPool", "pool", []string{"b"}, []string{"c"}, onnxgraph.AttrInts("kernel_shape", 2, 2), onnxgraph.AttrInts("strides", 2, 2)),
		n("Conv", "left", []string{"c", "w3", "b3"}, []string{"d"}),
		n("Conv", "right", []string{"c", "w4", "b4"}, []string{"e"}),
		n("Add", "join", []string{"d", "e"}, []string{"f"}),
		n("Concat", "cat", []string{"f", "d"}, []string{"g"}, onnxgraph.AttrInt("axis", 1)),
		n("Conv", "head", []string{"g", "w5", "b5"}, []string{"h"}),
		n("Sigmoid", "score_act", []string{"h"}, []string{"scores"}),
		n("GlobalAveragePool", "gap", []string{"g"}, []string{"p"}),
		n("Flatten", "flat", []string{"p"}, []string{"q"}),
		n("Gemm", "fc", []string{"q", "w6", "b6"}, []string{"logits"}, onnxgraph.AttrInt("transB", 1)),
	}
	inits := []*onnxpb.TensorProto{
		randomTensor(r, "w1", 0.3, 8, 3, 3, 3), randomTensor(r, "b1", 0.1, 8),
		randomTensor(r, "w2", 0.4, 8, 1, 3, 3), randomTensor(r, "b2", 0.1, 8),
		randomTensor(r, "w3", 0.3, 16, 8, 1, 1), randomTensor(r, "b3", 0.1, 16),
		randomTensor(r, "w4", 0.3, 16, 8, 1, 1), randomTensor(r, "b4", 0.1, 16),
		randomTensor(r, "w5", 0.2, 2, 32, 1, 1), randomTensor(r, "b5", 0.1, 2),
		randomTensor(r, "w6", 0.3, 5, 32), randomTensor(r, "b6", 0.1, 5),
	}
	return &onnxpb.ModelProto{
		IrVersion:   7,
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Version: opset}},
		Graph: &onnxpb.GraphProto{
			Name: "tiny", Node: nodes, Initializer: inits,
			Input: []*onnxpb.ValueInfoProto{onnxgraph.TensorValueInfo("image", onnxgraph.Float32, []int64{1, 3, 16, 16})},
			Output: []*onnxpb.ValueInfoProto{
				onnxgraph.TensorValueInfo("scores", onnxgraph.Float32, []int64{1, 2, 8, 8}),
				onnxgraph.TensorValueInfo("logits", onnxgraph.Float32, []int64{1, 5}),
			},
		},
	}
}

// writeImages writes count smooth random PNGs (gradients, blobs, noise)
// into dir and returns dir.
func writeImages(t testing.TB, dir string, count int, seed uint64) string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 11))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range count {
		img := image.NewRGBA(image.Rect(0, 0, 24, 20))
		fx, fy := r.Float64()*0.5, r.Float64()*0.5
		base := [3]float64{r.Float64() * 255, r.Float64() * 255, r.Float64() * 255}
		for y := range 20 {
			for x := range 24 {
				var c [3]uint8
				for k := range c {
					v := base[k] + 80*math.Sin(fx*float64(x)+fy*float64(y)+float64(k)) + 20*r.NormFloat64()
					c[k] = uint8(math.Max(0, math.Min(255, v)))
				}
				img.Set(x, y, color.RGBA{c[0], c[1], c[2], 255})
			}
		}
		f, err := os.Create(filepath.Join(dir, "img"+string(rune('a'+i%26))+string(rune('0'+i/26))+".png"))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	return dir
}

func saveModel(t testing.TB, dir, name string, m *onnxpb.ModelProto) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := onnxgraph.Save(path, m); err != nil {
		t.Fatal(err)
	}
	return path
}
