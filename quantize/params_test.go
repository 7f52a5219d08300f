package quantize

import (
	"math"
	"testing"
)

func TestActivationParams(t *testing.T) {
	cases := []struct {
		r      Range
		act    Activations
		scale  float64
		zp     int32
		zeroOK bool
	}{
		{Range{0, 2.55}, Uint8, 0.01, 0, true},
		{Range{-1, 1}, Uint8, 2.0 / 255, 128, true},
		{Range{0.5, 2}, Uint8, 2.0 / 255, 0, true}, // widened to include 0
		{Range{-3, -1}, Uint8, 3.0 / 255, 255, true},
		{Range{-2, 1}, Int8, 2.0 / 127, 0, true},
		{Range{0, 0}, Uint8, 1, 0, true},
	}
	for _, tc := range cases {
		p := ActivationParams(tc.r, tc.act)
		if math.Abs(float64(p.Scale)-tc.scale) > 1e-6 || p.ZeroPoint != tc.zp {
			t.Errorf("%+v %s: got %+v, want scale %v zp %d", tc.r, tc.act, p, tc.scale, tc.zp)
		}
		// Zero must be exactly representable: q = zp.
		if tc.act == Uint8 && (p.ZeroPoint < 0 || p.ZeroPoint > 255) {
			t.Errorf("%+v: zero point %d outside uint8", tc.r, p.ZeroPoint)
		}
	}
}

func TestQuantizeWeightsPerChannel(t *testing.T) {
	// Two output channels of very different magnitude: per-channel scales
	// keep the small one precise.
	w := []float32{0.01, -0.02, 0.005, 0.015, 5, -3, 1, 2}
	dims := []int64{2, 1, 2, 2}
	q, err := QuantizeWeights(w, dims, WeightOptions{Axis: 0, PerChannel: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Scales) != 2 || math.Abs(float64(q.Scales[0])-0.02/127) > 1e-9 || math.Abs(float64(q.Scales[1])-5.0/127) > 1e-7 {
		t.Fatalf("scales %v, want [0.02/127 5/127]", q.Scales)
	}
	for i, v := range w {
		s := q.Scales[i/4]
		if d := math.Abs(float64(v) - float64(q.Values[i])*float64(s)); d > float64(s)/2+1e-9 {
			t.Fatalf("weight %d: error %v above half a step %v", i, d, s/2)
		}
		if q.Values[i] < -127 {
			t.Fatalf("weight %d quantized to %d, want within [-127, 127]", i, q.Values[i])
		}
	}
	pt, _ := QuantizeWeights(w, dims, WeightOptions{})
	if len(pt.Scales) != 1 || pt.Values[0] != 0 {
		t.Fatalf("per-tensor: scales %v, first value %d (want one scale, small weight rounded to 0)", pt.Scales, pt.Values[0])
	}
	// Gemm weights [K, N] are per column: axis 1.
	g, _ := QuantizeWeights([]float32{1, 10, -1, -10}, []int64{2, 2}, WeightOptions{Axis: 1, PerChannel: true})
	if g.Values[0] != 127 || g.Values[1] != 127 || g.Values[2] != -127 {
		t.Fatalf("axis-1 quantization %v, want each column to use its full range", g.Values)
	}
	if _, err := QuantizeWeights(w, dims, WeightOptions{Axis: 4, PerChannel: true}); err == nil {
		t.Fatal("axis outside dims: want an error")
	}
}

func TestBiasStaysInInt32(t *testing.T) {
	// A channel of all-zero weights with a large bias would need a bias
	// scale of ~0: the floor raises the weight scale so the bias fits.
	bias := []float32{1000, 0.5}
	inScale := float32(1e-3)
	floor := BiasScaleFloor(bias, inScale)
	q, err := QuantizeWeights([]float32{0, 0, 0.3, -0.3}, []int64{2, 2}, WeightOptions{PerChannel: true, MinScales: floor})
	if err != nil {
		t.Fatal(err)
	}
	qb, scales := QuantizeBias(bias, inScale, q.Scales)
	for c := range bias {
		got := float64(qb[c]) * float64(scales[c])
		if math.Abs(got-float64(bias[c])) > float64(scales[c]) || qb[c] == math.MaxInt32 || qb[c] == -math.MaxInt32 {
			t.Fatalf("channel %d: bias %v came back as %v (q %d, scale %v)", c, bias[c], got, qb[c], scales[c])
		}
	}
}

func TestQuantizeWeightsReducedRange(t *testing.T) {
	w := []float32{1, -0.5, 0.25, -1}
	q, err := QuantizeWeights(w, []int64{1, 4}, WeightOptions{Range: WeightsReduced})
	if err != nil {
		t.Fatal(err)
	}
	if q.Values[0] != 63 || q.Values[3] != -63 || math.Abs(float64(q.Scales[0])-1.0/63) > 1e-9 {
		t.Fatalf("reduced range gave %v scale %v, want ±63 at |w| = 1", q.Values, q.Scales)
	}
	// A pair of u8 × s8 products never leaves int16 with 7-bit weights.
	if 2*255*63 > math.MaxInt16 {
		t.Fatal("the reduced grid does not prevent saturation")
	}
	if _, err := ParseWeightRange("half"); err == nil {
		t.Error("ParseWeightRange(half): no error")
	}
}
