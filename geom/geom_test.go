package geom

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b float32) bool { return math.Abs(float64(a-b)) <= 1e-5*max(1, math.Abs(float64(b))) }

func TestIoU(t *testing.T) {
	for _, c := range []struct {
		name string
		a, b [4]float64
		want float64
	}{
		{"corner overlap", [4]float64{0, 0, 2, 2}, [4]float64{1, 1, 3, 3}, 1.0 / 7},
		{"identical", [4]float64{0, 0, 2, 2}, [4]float64{0, 0, 2, 2}, 1},
		{"disjoint", [4]float64{0, 0, 2, 2}, [4]float64{5, 5, 6, 6}, 0},
		{"touching edges", [4]float64{0, 0, 1, 1}, [4]float64{1, 0, 2, 1}, 0},
		{"inside", [4]float64{0, 0, 2, 2}, [4]float64{0, 0, 1, 1}, 0.25},
		{"empty box", [4]float64{1, 1, 1, 1}, [4]float64{0, 0, 2, 2}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := IoU(c.a, c.b); math.Abs(got-c.want) > 1e-12 {
				t.Errorf("float64: IoU(%v, %v) = %v, want %v", c.a, c.b, got, c.want)
			}
			a32 := [4]float32{float32(c.a[0]), float32(c.a[1]), float32(c.a[2]), float32(c.a[3])}
			b32 := [4]float32{float32(c.b[0]), float32(c.b[1]), float32(c.b[2]), float32(c.b[3])}
			if got := IoU(a32, b32); !near(got, float32(c.want)) {
				t.Errorf("float32: IoU(%v, %v) = %v, want %v", a32, b32, got, c.want)
			}
		})
	}
}

func TestIoUMatrix(t *testing.T) {
	a := []float32{0, 0, 2, 2, 0, 0, 1, 1}
	b := []float32{1, 1, 3, 3, 0, 0, 2, 2, 5, 5, 6, 6, 1, 1, 1, 1}
	got := IoUMatrix(a, b)
	want := []float32{1.0 / 7, 1, 0, 0, 0, 0.25, 0, 0}
	if len(got) != len(want) {
		t.Fatalf("got %d values, want 2×4", len(got))
	}
	for i, w := range want {
		if !near(got[i], w) {
			t.Errorf("IoUMatrix[%d][%d] = %v, want %v", i/4, i%4, got[i], w)
		}
		if pair := IoU(at(a, i/4), at(b, i%4)); pair != got[i] {
			t.Errorf("IoUMatrix[%d][%d] = %v, IoU of the pair %v", i/4, i%4, got[i], pair)
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
	for _, c := range []struct {
		name          string
		boxes, scores []float32
		threshold     float32
		want          []int
	}{
		{"threshold 0.5", boxes, scores, 0.5, []int{3, 2}},
		// 0.7 keeps box 1 (IoU 0.68 with 0 and 0.63 with 3) but not 0 (0.9 with 3).
		{"threshold 0.7", boxes, scores, 0.7, []int{3, 1, 2}},
		{"empty", nil, nil, 0.5, nil},
		{"equal scores in index order", []float32{0, 0, 1, 1, 5, 5, 6, 6}, []float32{0.5, 0.5}, 0.5, []int{0, 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := NMS(c.boxes, c.scores, c.threshold); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
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
	// Against a brute-force reference: NMS per class, merged by score.
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
		var sub, subScores []float32
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

func TestBadLengthsPanic(t *testing.T) {
	for _, c := range []struct {
		name string
		call func()
	}{
		{"Areas", func() { Areas([]float32{0, 0, 1}) }},
		{"IoUMatrix", func() { IoUMatrix([]float32{0, 0, 1}, nil) }},
		{"NMS", func() { NMS([]float32{0, 0, 1, 1}, nil, 0.5) }},
		{"BatchedNMS", func() { BatchedNMS([]float32{0, 0, 1, 1}, []float32{1}, nil, 0.5) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				err, ok := r.(error)
				var le *LengthError
				if !ok || !errors.As(err, &le) || le.Func != c.name {
					t.Fatalf("panic value %#v, want a *LengthError from %s", r, c.name)
				}
			}()
			c.call()
		})
	}
}
