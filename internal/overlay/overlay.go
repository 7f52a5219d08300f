// Package overlay draws detection boxes and their labels onto RGBA images.
// It is the one drawer behind `gidedge predict`'s annotated images, the
// demo report's detection grid and distillation's GI pictures, so a box
// looks the same in all three.
//
// Coordinates are pixels of the image drawn on; whatever falls outside its
// bounds is clipped. Nothing here fails, so nothing returns an error.
package overlay

import (
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// palette holds twelve distinct, saturated colours (after Sasha Trubetskoy's
// list of distinct colours).
var palette = [...]color.RGBA{
	{230, 25, 75, 255}, {60, 180, 75, 255}, {0, 130, 200, 255}, {245, 130, 48, 255},
	{145, 30, 180, 255}, {70, 240, 240, 255}, {240, 50, 230, 255}, {210, 245, 60, 255},
	{250, 190, 190, 255}, {0, 128, 128, 255}, {170, 110, 40, 255}, {128, 0, 0, 255},
}

// ClassColor is the colour of class index k; classes twelve apart share one.
func ClassColor(k int) color.RGBA {
	k %= len(palette)
	if k < 0 {
		k += len(palette)
	}
	return palette[k]
}

// Rect is the pixel rectangle a continuous box (x1, y1, x2, y2) covers,
// each edge rounded to the nearest pixel boundary.
func Rect[T float32 | float64](b [4]T) image.Rectangle {
	r := func(v T) int { return int(math.Floor(float64(v) + 0.5)) }
	return image.Rect(r(b[0]), r(b[1]), r(b[2]), r(b[3]))
}

// Box outlines r in colour c with a line thick pixels wide, drawn inside r.
func Box(img *image.RGBA, r image.Rectangle, c color.RGBA, thick int) {
	u := image.NewUniform(c)
	for t := 0; t < thick; t++ {
		in := r.Inset(t)
		if in.Empty() {
			return
		}
		for _, edge := range []image.Rectangle{
			image.Rect(in.Min.X, in.Min.Y, in.Max.X, in.Min.Y+1), // top
			image.Rect(in.Min.X, in.Max.Y-1, in.Max.X, in.Max.Y), // bottom
			image.Rect(in.Min.X, in.Min.Y, in.Min.X+1, in.Max.Y), // left
			image.Rect(in.Max.X-1, in.Min.Y, in.Max.X, in.Max.Y), // right
		} {
			draw.Draw(img, edge.Intersect(img.Bounds()), u, image.Point{}, draw.Src)
		}
	}
}

// labelHeight is the height of a label band: the 13-pixel font plus one.
const labelHeight = 14

// Label writes text in white on a band of colour c at r's top-left corner:
// above r when the image has room there, else just inside r's top edge.
func Label(img *image.RGBA, r image.Rectangle, text string, c color.RGBA) {
	face := basicfont.Face7x13
	top := r.Min.Y - labelHeight
	if top < img.Bounds().Min.Y {
		top = r.Min.Y
	}
	band := image.Rect(r.Min.X, top, r.Min.X+font.MeasureString(face, text).Ceil()+4, top+labelHeight)
	draw.Draw(img, band.Intersect(img.Bounds()), image.NewUniform(c), image.Point{}, draw.Src)
	Text(img, band.Min.X+2, top+11, text, color.RGBA{255, 255, 255, 255})
}

// Text writes s in colour c with its baseline at (x, y), in the 7×13
// fixed font.
func Text(img *image.RGBA, x, y int, s string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}
