package overlay

import (
	"image"
	"image/color"
	"testing"
)

var red = color.RGBA{255, 0, 0, 255}

// painted counts the pixels of img that are c.
func painted(img *image.RGBA, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if img.RGBAAt(x, y) == c {
				n++
			}
		}
	}
	return n
}

func TestBox(t *testing.T) {
	for _, c := range []struct {
		name  string
		r     image.Rectangle
		thick int
		want  int // pixels painted
	}{
		{"one pixel line", image.Rect(2, 2, 8, 6), 1, 2*6 + 2*2},
		{"two pixel line", image.Rect(2, 2, 8, 8), 2, 6*6 - 2*2},
		{"clipped at the border", image.Rect(-5, -5, 5, 5), 1, 5 + 5 - 1},
		{"thicker than the box is wide", image.Rect(0, 0, 3, 3), 5, 9},
		{"outside", image.Rect(50, 50, 60, 60), 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := image.NewRGBA(image.Rect(0, 0, 20, 20))
			Box(img, c.r, red, c.thick)
			if got := painted(img, red); got != c.want {
				t.Fatalf("%d pixels painted, want %d", got, c.want)
			}
		})
	}
}

func TestLabelPlacement(t *testing.T) {
	for _, c := range []struct {
		name    string
		r       image.Rectangle
		bandTop int
	}{
		{"above the box", image.Rect(10, 30, 60, 60), 30 - labelHeight},
		{"inside when there is no room above", image.Rect(10, 5, 60, 60), 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := image.NewRGBA(image.Rect(0, 0, 80, 80))
			Label(img, c.r, "cat 0.91", red)
			if img.RGBAAt(c.r.Min.X, c.bandTop) != red || img.RGBAAt(c.r.Min.X, c.bandTop-1) == red {
				t.Fatalf("label band does not start at y = %d", c.bandTop)
			}
			if painted(img, color.RGBA{255, 255, 255, 255}) == 0 {
				t.Fatal("no text drawn on the band")
			}
		})
	}
}

func TestRectAndClassColor(t *testing.T) {
	if got, want := Rect([4]float32{1.4, 1.6, 9.5, 10.49}), image.Rect(1, 2, 10, 10); got != want {
		t.Errorf("Rect = %v, want %v", got, want)
	}
	if ClassColor(0) == ClassColor(1) || ClassColor(3) != ClassColor(3+len(palette)) || ClassColor(-1) != ClassColor(len(palette)-1) {
		t.Error("ClassColor does not cycle through distinct colours")
	}
}
