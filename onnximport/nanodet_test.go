package onnximport

import (
	"testing"

	"github.com/gidedge/gidedge/internal/sharedtest"
)

// NanoDet-m's backbone outputs (ShuffleNetV2 stages 2–4) and its PAN's.
var nanodetOutputs = []string{"528", "743", "846", "861", "867", "873"}

func TestImportNanoDet(t *testing.T) {
	path := sharedtest.Dir(t, "models", "nanodet_m_320.onnx")
	res, err := Import(path, Options{
		Take: TakeAll, Outputs: nanodetOutputs, BGR: true,
		Mean: &[3]float32{103.53, 116.28, 123.675}, Std: &[3]float32{57.375, 57.12, 58.395},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d nodes %v, %d params, worst %.3g, ports %+v", res.Source, res.Nodes, res.Ops, res.Params, res.Worst, res.Outputs)
	for _, p := range res.Parity {
		t.Logf("  %+v", p)
	}
}
