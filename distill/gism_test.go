package distill

import (
	"slices"
	"strings"
	"testing"
)

// gismCase is a hand-built image with six positions and two classes whose
// "regression" values are the boxes themselves (identity decoding).
func gismCase() SelectInput {
	teacher := []float32{
		0.9, 0.1, // 0: score 0.7, teacher more confident → teacher box
		0.1, 0.3, // 1: score 0.5, student more confident → student box
		0.85, 0, // 2: score 0.55, teacher box overlapping position 0's → suppressed
		0.5, 0, // 3: score 0.4, box 1 px wide → dropped by the minimum size
		0.4, 0, // 4: score 0.3, box hanging over the border → clipped
		0.2, 0.05, // 5: score 0.1
	}
	student := []float32{
		0.2, 0.1,
		0.1, 0.8,
		0.3, 0,
		0.1, 0,
		0.1, 0,
		0.1, 0.05,
	}
	tBoxes := []float32{
		10, 10, 30, 30,
		0, 0, 1, 1, // never used: the student wins at 1
		12, 12, 31, 31, // IoU with 0's box ≈ 0.72
		40, 40, 41, 60,
		50, 50, 80, 70,
		0, 40, 10, 50,
	}
	sBoxes := []float32{
		0, 0, 1, 1, // never used: the teacher wins at 0
		35, 5, 55, 25,
		0, 0, 1, 1,
		0, 0, 1, 1,
		0, 0, 1, 1,
		0, 0, 1, 1, // teacher wins at 5 (0.2 > 0.1)
	}
	return SelectInput{
		TeacherProb: teacher, StudentProb: student, NumClasses: 2,
		TeacherReg: tBoxes, StudentReg: sBoxes,
		Decode: func(reg []float32, rows []int) []float32 { return slices.Clone(reg) },
		Width:  64, Height: 64,
		GTBoxes:  []float32{8, 8, 30, 30, 36, 6, 56, 26},
		Positive: []bool{true, false, false, false, false, false},
	}
}

func TestSelect(t *testing.T) {
	in := gismCase()
	opt := SelectOptions{PreTopK: 3000, MinSize: 2, NMSIoU: 0.3, TopK: 10}
	gis, err := Select(in, opt)
	if err != nil {
		t.Fatal(err)
	}
	var pos []int
	for _, g := range gis {
		pos = append(pos, g.Position)
	}
	if !slices.Equal(pos, []int{0, 1, 4, 5}) {
		t.Fatalf("selected positions %v, want [0 1 4 5] (2 suppressed by NMS, 3 too small)", pos)
	}
	want := []GI{
		{Box: [4]float32{10, 10, 30, 30}, Score: 0.7, Position: 0, FromTeacher: true, Type: GIPositive},
		{Box: [4]float32{35, 5, 55, 25}, Score: 0.5, Position: 1, FromTeacher: false, Type: GISemi},
		{Box: [4]float32{50, 50, 64, 64}, Score: 0.3, Position: 4, FromTeacher: true, Type: GINegative},
		{Box: [4]float32{0, 40, 10, 50}, Score: 0.1, Position: 5, FromTeacher: true, Type: GINegative},
	}
	for i, g := range gis {
		w := want[i]
		if g.Box != w.Box || g.Position != w.Position || g.FromTeacher != w.FromTeacher || g.Type != w.Type || abs(g.Score-w.Score) > 1e-6 {
			t.Errorf("GI %d = %+v, want %+v", i, g, w)
		}
	}

	t.Run("top-k", func(t *testing.T) {
		o := opt
		o.TopK = 2
		gis, _ := Select(in, o)
		if len(gis) != 2 || gis[0].Position != 0 || gis[1].Position != 1 {
			t.Fatalf("top-2 = %+v, want positions 0 and 1", gis)
		}
	})
	t.Run("pre-top-k", func(t *testing.T) {
		o := opt
		o.PreTopK = 3 // only positions 0, 2, 1 enter NMS
		gis, _ := Select(in, o)
		if len(gis) != 2 || gis[0].Position != 0 || gis[1].Position != 1 {
			t.Fatalf("pre-top-3 = %+v, want positions 0 and 1", gis)
		}
	})
	t.Run("looser nms keeps the overlap", func(t *testing.T) {
		o := opt
		o.NMSIoU = 0.8
		gis, _ := Select(in, o)
		if len(gis) != 5 || gis[1].Position != 2 {
			t.Fatalf("NMS 0.8 kept %+v, want position 2 second of five", gis)
		}
	})
	t.Run("keep one type", func(t *testing.T) {
		o := opt
		neg := GINegative
		o.Keep = &neg
		o.TopK = 1
		gis, _ := Select(in, o)
		if len(gis) != 1 || gis[0].Position != 4 {
			t.Fatalf("first negative GI = %+v, want position 4", gis)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		bad := gismCase()
		bad.StudentProb = bad.StudentProb[:4]
		if _, err := Select(bad, opt); err == nil || !strings.Contains(err.Error(), "student has 4 probabilities") {
			t.Fatalf("error %v, want one naming the student's probability count", err)
		}
	})
}

func TestGroundTruthGIs(t *testing.T) {
	gis := GroundTruthGIs([]float32{0, 0, 10, 10, 5, 5, 5, 9, 1, 1, 4, 4}, 10)
	if len(gis) != 2 || gis[1].Box != [4]float32{1, 1, 4, 4} || gis[0].Position != -1 || gis[0].Type != GIPositive {
		t.Fatalf("GT GIs %+v, want the two non-empty boxes as positive GIs", gis)
	}
}

func abs(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
