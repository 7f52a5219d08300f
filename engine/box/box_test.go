package box

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-5*max(1, math.Abs(float64(b))) }

func TestIoU(t *testing.T) {
	a := []float32{0, 0, 2, 2, 0, 0, 1, 1}
	b := []float32{1, 1, 3, 3, 0, 0, 2, 2, 5, 5, 6, 6, 1, 1, 1, 1}
	got := IoU(a, b)
	want := []float32{1.0 / 7, 1, 0, 0, 0, 0.25, 0, 0}
	if len(got) != len(want) {
		t.Fatalf("got %d values, want 2×4", len(got))
	}
	for i, w := range want {
		if !near(got[i], w) {
			t.Errorf("IoU[%d][%d] = %v, want %v", i/4, i%4, got[i], w)
		}
	}
}

func TestNMS(t *testing.T) {
	boxes := []float32{
		0, 0, 10, 10, // 0
		1, 1, 11, 11, // 1: IoU with 0 = 81/119 ≈ 0.68
		20, 20, 30, 30, // 2
		0, 0, 10, 9, // 3: IoU with 0 = 0.9
		21, 20, 31, 30, // 4: IoU with 2 ≈ 0.82
	}
	scores := []float32{0.9, 0.8, 0.7, 0.95, 0.6}
	if got, want := NMS(boxes, scores, 0.5), []int{3, 2}; !slices.Equal(got, want) {
		t.Errorf("thr 0.5: got %v, want %v", got, want)
	}
	// 0.7 keeps box 1 (IoU 0.68 with 0 and 0.63 with 3) but not 0 (0.9 with 3).
	if got, want := NMS(boxes, scores, 0.7), []int{3, 1, 2}; !slices.Equal(got, want) {
		t.Errorf("thr 0.7: got %v, want %v", got, want)
	}
	if got := NMS(nil, nil, 0.5); len(got) != 0 {
		t.Errorf("empty input kept %v", got)
	}
	// Equal scores: lower index first.
	if got, want := NMS([]float32{0, 0, 1, 1, 5, 5, 6, 6}, []float32{0.5, 0.5}, 0.5), []int{0, 1}; !slices.Equal(got, want) {
		t.Errorf("ties: got %v, want %v", got, want)
	}
}

func TestBatchedNMS(t *testing.T) {
	boxes := []float32{
		0, 0, 10, 10,
		0, 0, 10, 9.5,
		0, 0, 10, 9,
		20, 20, 30, 30,
	}
	scores := []float32{0.9, 0.85, 0.8, 0.3}
	classes := []int{0, 1, 0, 1}
	got := BatchedNMS(boxes, scores, classes, 0.5)
	if want := []int{0, 1, 3}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// Against a brute-force reference: per class NMS, merged by score.
	rng := rand.New(rand.NewPCG(1, 2))
	n := 200
	boxes = make([]float32, 0, n*4)
	scores = make([]float32, n)
	classes = make([]int, n)
	for i := 0; i < n; i++ {
		x, y := rng.Float32()*50, rng.Float32()*50
		boxes = append(boxes, x, y, x+5+rng.Float32()*20, y+5+rng.Float32()*20)
		scores[i] = rng.Float32()
		classes[i] = rng.IntN(3)
	}
	got = BatchedNMS(boxes, scores, classes, 0.45)
	var want []int
	for c := 0; c < 3; c++ {
		var sub []float32
		var subScores []float32
		var orig []int
		for i := 0; i < n; i++ {
			if classes[i] == c {
				sub = append(sub, boxes[i*4:i*4+4]...)
				subScores = append(subScores, scores[i])
				orig = append(orig, i)
			}
		}
		for _, k := range NMS(sub, subScores, 0.45) {
			want = append(want, orig[k])
		}
	}
	slices.SortFunc(want, func(a, b int) int {
		switch {
		case scores[a] > scores[b]:
			return -1
		case scores[a] < scores[b]:
			return 1
		}
		return a - b
	})
	if !slices.Equal(got, want) {
		t.Fatalf("batched NMS differs from per-class reference:\n got %v\nwant %v", got, want)
	}
}

func TestEncodeDecode(t *testing.T) {
	w := [4]float32{10, 10, 5, 5}
	anchors := []float32{0, 0, 10, 20}
	gt := []float32{5, 0, 25, 20}
	d := Encode(anchors, gt, w)
	// anchor centre (5, 10) size 10×20; gt centre (15, 10) size 20×20.
	want := []float32{10 * 10.0 / 10, 0, 5 * float32(math.Ln2), 0}
	for i := range want {
		if !near(d[i], want[i]) {
			t.Fatalf("delta %d: got %v want %v", i, d[i], want[i])
		}
	}
	back := Decode(anchors, d, w)
	for i := range gt {
		if !near(back[i], gt[i]) {
			t.Fatalf("decode(encode) coordinate %d: got %v want %v", i, back[i], gt[i])
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 100; trial++ {
		a := []float32{rng.Float32() * 50, rng.Float32() * 50, 0, 0}
		a[2], a[3] = a[0]+1+rng.Float32()*40, a[1]+1+rng.Float32()*40
		g := []float32{rng.Float32() * 50, rng.Float32() * 50, 0, 0}
		g[2], g[3] = g[0]+1+rng.Float32()*40, g[1]+1+rng.Float32()*40
		back := Decode(a, Encode(a, g, [4]float32{1, 1, 1, 1}), [4]float32{1, 1, 1, 1})
		for i := range g {
			if math.Abs(float64(back[i]-g[i])) > 1e-3 {
				t.Fatalf("round trip %v → %v", g, back)
			}
		}
	}
	// Huge log-scale deltas are clamped instead of overflowing.
	big := Decode([]float32{0, 0, 16, 16}, []float32{0, 0, 100, 100}, [4]float32{1, 1, 1, 1})
	if !near(big[2]-big[0], 1000) || !near(big[3]-big[1], 1000) {
		t.Fatalf("clamped decode gave size %v×%v, want 1000×1000", big[2]-big[0], big[3]-big[1])
	}
}

func TestBadLengthsPanic(t *testing.T) {
	for name, fn := range map[string]func(){
		"IoU":        func() { IoU([]float32{0, 0, 1}, nil) },
		"NMS":        func() { NMS([]float32{0, 0, 1, 1}, nil, 0.5) },
		"BatchedNMS": func() { BatchedNMS([]float32{0, 0, 1, 1}, []float32{1}, nil, 0.5) },
		"Encode":     func() { Encode([]float32{0, 0, 1, 1}, nil, [4]float32{1, 1, 1, 1}) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			fn()
		})
	}
}
