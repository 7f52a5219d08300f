package infer

import (
	"math"
	"testing"
)

func yoloxSignature(rows, cols int64) Signature {
	return Signature{Path: "yolox.onnx",
		Inputs:  []TensorInfo{{Name: "images", Datatype: "FP32", Shape: []int64{1, 3, 64, 64}}},
		Outputs: []TensorInfo{{Name: "output", Datatype: "FP32", Shape: []int64{1, rows, cols}}}}
}

func TestYOLOXAdapterDecodes(t *testing.T) {
	// 64×64: 8×8 + 4×4 + 2×2 = 84 rows, 2 classes.
	a, ok, err := matchYOLOX(yoloxSignature(84, 7))
	if err != nil || !ok {
		t.Fatalf("match: ok %v, err %v", ok, err)
	}
	pre := a.Preprocess()
	if pre.ChannelOrder != OrderBGR || pre.Resize != ResizeLetter || pre.PadValue != 114 || pre.PixelScale != 1 || pre.Std != [3]float32{1, 1, 1} {
		t.Errorf("preprocess %+v, want BGR 0–255 letterboxed with 114", pre)
	}
	data := make([]float32, 84*7)
	// Stride 8, cell (x 3, y 2): centre (3.5, 2.5) cells, size 2×1 cells.
	row := data[(2*8+3)*7:]
	copy(row, []float32{0.5, 0.5, float32(math.Log(2)), 0, 0.9, 0.1, 0.8})
	// Stride 32, cell (1, 1): objectness below the threshold, dropped.
	copy(data[(64+16+3)*7:], []float32{0, 0, 0, 0, 0.2, 1, 1})
	dets, err := a.Decode(Outputs{"output": {Shape: []int64{1, 84, 7}, Data: data}}, Params{ScoreThreshold: 0.3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dets) != 1 {
		t.Fatalf("detections %+v, want one", dets)
	}
	d := dets[0]
	want := [4]float32{20, 16, 36, 24}
	for i := range want {
		if math.Abs(float64(d.Box[i]-want[i])) > 1e-4 {
			t.Fatalf("box %v, want %v", d.Box, want)
		}
	}
	if d.Class != 1 || math.Abs(float64(d.Score)-0.72) > 1e-6 {
		t.Errorf("class %d score %v, want class 1 score 0.72", d.Class, d.Score)
	}
}

func TestYOLOXAdapterIgnoresOtherModels(t *testing.T) {
	for _, sig := range []Signature{
		yoloxSignature(85, 7), // rows do not match the grids
		yoloxSignature(84, 5), // no class column
		{Inputs: []TensorInfo{{Name: "x", Datatype: "FP32", Shape: []int64{1, 3, 60, 60}}}, Outputs: []TensorInfo{{Name: "o", Datatype: "FP32", Shape: []int64{1, 75, 7}}}},
	} {
		if _, ok, err := matchYOLOX(sig); ok || err != nil {
			t.Errorf("%v: matched %v, err %v; want no match", sig.Outputs, ok, err)
		}
	}
}
