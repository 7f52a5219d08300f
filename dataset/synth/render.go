package synth

import (
	"image"
	"math"
	"math/rand/v2"

	"github.com/gidedge/gidedge/dataset"
)

// Classes are the object classes of the synthetic set, in class-index
// order. Three differ only by texture (stripes, dots, checks), the rest by
// fine shape (a ring against the filled discs distractors draw, a star
// against a triangle); plain discs, squares, hexagons, ellipses, thick lines
// and speckled blobs are drawn as distractors that are not objects.
var Classes = []string{"striped-disc", "dotted-disc", "checkered-square", "ring", "star", "triangle"}

const (
	classStriped = iota
	classDotted
	classChecker
	classRing
	classStar
	classTriangle
)

// canvas is a float RGB image, 0–255, row-major with 3 values a pixel.
type canvas struct {
	w, h int
	pix  []float32
}

type rgb [3]float32

func (c rgb) luma() float32 { return 0.299*c[0] + 0.587*c[1] + 0.114*c[2] }

func hash3(a, b, c uint64) uint64 {
	x := a*0x9e3779b97f4a7c15 ^ b*0xbf58476d1ce4e5b9 ^ c*0x94d049bb133111eb
	x ^= x >> 31
	x *= 0xd6e8feb86659fd93
	x ^= x >> 32
	return x
}

func newRand(keys ...uint64) *rand.Rand {
	a, b := uint64(0x243f6a8885a308d3), uint64(0x13198a2e03707344)
	for _, k := range keys {
		a = hash3(a, k, b)
		b = hash3(b, a, k)
	}
	return rand.New(rand.NewPCG(a, b))
}

func unit(r *rand.Rand) float64 { return float64(r.Uint64()>>11) / (1 << 53) }

func between(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*unit(r) }

func intn(r *rand.Rand, lo, hi int) int { return lo + int(unit(r)*float64(hi-lo+1)) }

// randomColor draws a colour in HSV with the given value range.
func randomColor(r *rand.Rand, vlo, vhi float64) rgb {
	h := unit(r) * 6
	s := between(r, 0.25, 1)
	v := between(r, vlo, vhi) * 255
	i := int(h)
	f := h - float64(i)
	p, q, t := v*(1-s), v*(1-s*f), v*(1-s*(1-f))
	var c [3]float64
	switch i % 6 {
	case 0:
		c = [3]float64{v, t, p}
	case 1:
		c = [3]float64{q, v, p}
	case 2:
		c = [3]float64{p, v, t}
	case 3:
		c = [3]float64{p, q, v}
	case 4:
		c = [3]float64{t, p, v}
	default:
		c = [3]float64{v, p, q}
	}
	return rgb{float32(c[0]), float32(c[1]), float32(c[2])}
}

// contrasting draws a colour whose luma differs from ref by at least minDiff.
func contrasting(r *rand.Rand, ref float32, minDiff float32) rgb {
	for range 16 {
		c := randomColor(r, 0.1, 1)
		if d := c.luma() - ref; d >= minDiff || d <= -minDiff {
			return c
		}
	}
	if ref > 128 {
		return randomColor(r, 0, 0.2)
	}
	return randomColor(r, 0.85, 1)
}

func (c *canvas) at(x, y int) rgb {
	i := 3 * (y*c.w + x)
	return rgb{c.pix[i], c.pix[i+1], c.pix[i+2]}
}

// background paints one of the first kinds backgrounds: linear or radial
// gradients, smooth value noise, or a faint stripe or check texture (so
// texture alone does not mark an object).
func (c *canvas) background(r *rand.Rand, kinds int) {
	a, b := randomColor(r, 0.15, 0.95), randomColor(r, 0.15, 0.95)
	kind := intn(r, 0, kinds-1)
	w, h := float64(c.w), float64(c.h)
	ang := unit(r) * 2 * math.Pi
	ca, sa := math.Cos(ang), math.Sin(ang)
	cx, cy := between(r, 0, w), between(r, 0, h)
	diag := math.Hypot(w, h)
	// Value-noise lattice for kind 2.
	cell := between(r, w/8, w/3)
	gw, gh := int(w/cell)+2, int(h/cell)+2
	lattice := make([]float64, gw*gh)
	for i := range lattice {
		lattice[i] = unit(r)
	}
	period := between(r, 6, 24)
	faint := float32(between(r, 0.06, 0.18))
	for y := range c.h {
		for x := range c.w {
			fx, fy := float64(x)+0.5, float64(y)+0.5
			var t float64
			switch kind {
			case 0:
				t = ((fx-w/2)*ca+(fy-h/2)*sa)/diag + 0.5
			case 1:
				t = math.Hypot(fx-cx, fy-cy) / diag * 1.5
			case 2:
				gx, gy := fx/cell, fy/cell
				ix, iy := int(gx), int(gy)
				ux, uy := smooth(gx-float64(ix)), smooth(gy-float64(iy))
				v00, v10 := lattice[iy*gw+ix], lattice[iy*gw+ix+1]
				v01, v11 := lattice[(iy+1)*gw+ix], lattice[(iy+1)*gw+ix+1]
				t = (v00*(1-ux)+v10*ux)*(1-uy) + (v01*(1-ux)+v11*ux)*uy
			case 3:
				u := fx*ca + fy*sa
				t = 0.5 + float64(faint)*math.Copysign(1, math.Sin(2*math.Pi*u/period))
			default:
				u, v := fx*ca+fy*sa, -fx*sa+fy*ca
				chk := (int(math.Floor(u/period)) + int(math.Floor(v/period))) & 1
				t = 0.5 + float64(faint)*float64(2*chk-1)
			}
			t = math.Max(0, math.Min(1, t))
			i := 3 * (y*c.w + x)
			for k := range 3 {
				c.pix[i+k] = a[k] + (b[k]-a[k])*float32(t)
			}
		}
	}
}

func smooth(t float64) float64 { return t * t * (3 - 2*t) }

// draw composites a shape at (cx, cy) with fill f mixing colours p and q,
// and returns the covered area in pixels (the COCO "area").
func (c *canvas) draw(s shape, cx, cy float64, f fill, p, q rgb) float64 {
	x1, y1, x2, y2 := s.extent()
	xa := max(0, int(math.Floor(cx+x1))-1)
	ya := max(0, int(math.Floor(cy+y1))-1)
	xb := min(c.w-1, int(math.Ceil(cx+x2))+1)
	yb := min(c.h-1, int(math.Ceil(cy+y2))+1)
	var area float64
	for y := ya; y <= yb; y++ {
		dy := float64(y) + 0.5 - cy
		for x := xa; x <= xb; x++ {
			dx := float64(x) + 0.5 - cx
			cov := s.sdf(dx, dy) + 0.5
			if cov <= 0 {
				continue
			}
			if cov > 1 {
				cov = 1
			}
			area += cov
			m := float32(f.mix(dx, dy))
			a := float32(cov)
			i := 3 * (y*c.w + x)
			for k := range 3 {
				col := p[k] + (q[k]-p[k])*m
				c.pix[i+k] += (col - c.pix[i+k]) * a
			}
		}
	}
	return area
}

// noise adds zero-mean noise of the given strength (a triangular
// distribution, cheap and close enough to Gaussian) and converts to RGBA.
func (c *canvas) toRGBA(seed uint64, sigma float32) *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, c.w, c.h))
	state := seed | 1
	next := func() float32 {
		state ^= state << 13
		state ^= state >> 7
		state ^= state << 17
		return float32(state>>40) / (1 << 24)
	}
	for i, j := 0, 0; i < len(c.pix); i, j = i+3, j+4 {
		for k := range 3 {
			v := c.pix[i+k] + (next()+next()-1)*sigma*2.45
			out.Pix[j+k] = uint8(min(255, max(0, v+0.5)))
		}
		out.Pix[j+3] = 255
	}
	return out
}

// placed is an object or distractor already on the canvas.
type placed struct {
	box    dataset.Box
	object bool
}

// Scene is one rendered image with its annotations.
type Scene struct {
	Image   *image.RGBA
	Objects []dataset.Object
	Quality int // JPEG quality the image is written with
}

// Render draws image number index of a set of the given preset: a pure
// function of (preset, seed, index, size, object counts). Object classes
// index the preset's Classes.
func Render(p Preset, seed uint64, index int, size int, minObjects, maxObjects int) (Scene, error) {
	rc, err := p.recipe()
	if err != nil {
		return Scene{}, err
	}
	return rc.render(seed, index, size, minObjects, maxObjects), nil
}

func (rc recipe) render(seed uint64, index int, size int, minObjects, maxObjects int) Scene {
	r := newRand(seed, uint64(index), 0x73636e65)
	c := &canvas{w: size, h: size, pix: make([]float32, 3*size*size)}
	c.background(r, rc.backgrounds)
	// A few large soft blotches break up the background further.
	for range intn(r, 0, rc.maxBlotches) {
		rad := between(r, float64(size)/8, float64(size)/3)
		e := ellipse{rad, rad * between(r, 0.4, 1), 1, 0}
		ang := unit(r) * math.Pi
		e.cos, e.sin = math.Cos(ang), math.Sin(ang)
		col := randomColor(r, 0.15, 0.95)
		bg := c.at(intn(r, 0, size-1), intn(r, 0, size-1))
		mixed := rgb{(col[0] + bg[0]) / 2, (col[1] + bg[1]) / 2, (col[2] + bg[2]) / 2}
		c.draw(e, between(r, 0, float64(size)), between(r, 0, float64(size)), solid{}, mixed, mixed)
	}

	nObj := intn(r, minObjects, maxObjects)
	nDis := intn(r, rc.minDistractors, rc.maxDistractors)
	// Interleave objects and distractors so either may occlude the other.
	kinds := make([]bool, 0, nObj+nDis)
	for range nObj {
		kinds = append(kinds, true)
	}
	for range nDis {
		kinds = append(kinds, false)
	}
	for i := len(kinds) - 1; i > 0; i-- {
		j := int(unit(r) * float64(i+1))
		kinds[i], kinds[j] = kinds[j], kinds[i]
	}

	var done []placed
	var objs []dataset.Object
	minSide, maxSide := rc.sides(size)
	for _, isObject := range kinds {
		side := math.Exp(between(r, math.Log(minSide), math.Log(maxSide)))
		class := intn(r, 0, len(rc.classes)-1)
		var s shape
		var f fill
		if isObject {
			s, f = objectShape(r, rc.classes[class], side)
		} else {
			s, f = distractorShape(r, side)
		}
		x1, y1, x2, y2 := s.extent()
		var cx, cy float64
		var box dataset.Box
		ok := false
		for range 30 {
			// Up to rc.overhang of a shape may hang over the border.
			cx = between(r, -x1-(x2-x1)*rc.overhang, float64(size)-x2+(x2-x1)*rc.overhang)
			cy = between(r, -y1-(y2-y1)*rc.overhang, float64(size)-y2+(y2-y1)*rc.overhang)
			box = dataset.Box{X1: cx + x1, Y1: cy + y1, X2: cx + x2, Y2: cy + y2}
			if rc.fits(box, done, isObject) {
				ok = true
				break
			}
		}
		if !ok {
			continue
		}
		bg := c.at(clampInt(int(cx), 0, size-1), clampInt(int(cy), 0, size-1))
		p := contrasting(r, bg.luma(), rc.minContrast)
		q := contrasting(r, p.luma(), 60)
		if _, plain := f.(shading); plain {
			// Shading varies the colour only slightly.
			q = rgb{p[0]*0.7 + q[0]*0.3, p[1]*0.7 + q[1]*0.3, p[2]*0.7 + q[2]*0.3}
		}
		area := c.draw(s, cx, cy, f, p, q)
		done = append(done, placed{box, isObject})
		if isObject {
			clipped := box.Clip(float64(size), float64(size))
			objs = append(objs, dataset.Object{Box: clipped, Class: class, Area: area})
		}
	}
	sigma := float32(between(r, rc.minNoise, rc.maxNoise))
	quality := intn(r, rc.minQuality, rc.maxQuality)
	return Scene{Image: c.toRGBA(r.Uint64(), sigma), Objects: objs, Quality: quality}
}

// fits limits occlusion: a new shape may cover at most rc.occlusion of an
// earlier object's box (benchmark: 40%), and a new object may lie with at
// most rc.onDistractor of its box on an earlier distractor's (benchmark:
// 60%), which would otherwise hide much of it.
func (rc recipe) fits(b dataset.Box, done []placed, isObject bool) bool {
	for _, p := range done {
		inter := intersection(b, p.box)
		if inter == 0 {
			continue
		}
		if p.object && inter > rc.occlusion*p.box.Area() {
			return false
		}
		if isObject && !p.object && inter > rc.onDistractor*b.Area() {
			return false
		}
	}
	return true
}

func intersection(a, b dataset.Box) float64 {
	w := math.Min(a.X2, b.X2) - math.Max(a.X1, b.X1)
	h := math.Min(a.Y2, b.Y2) - math.Max(a.Y1, b.Y1)
	if w <= 0 || h <= 0 {
		return 0
	}
	return w * h
}

func clampInt(v, lo, hi int) int { return max(lo, min(hi, v)) }

// objectShape builds the shape of a class with a box side of about side
// pixels. Textures scale with the object, with a floor of a few pixels, so
// small objects are hard to tell apart, as in real data.
func objectShape(r *rand.Rand, class int, side float64) (shape, fill) {
	rad := side / 2
	ang := unit(r) * 2 * math.Pi
	ca, sa := math.Cos(ang), math.Sin(ang)
	plain := shading{between(r, -0.5, 0.5) / rad, between(r, -0.5, 0.5) / rad}
	switch class {
	case classStriped:
		period := math.Max(3, side/between(r, 3, 5))
		return disc{rad}, stripes{period, ca, sa, unit(r) * period}
	case classDotted:
		period := math.Max(4, side/between(r, 2.5, 4))
		return disc{rad}, dots{period, period * between(r, 0.22, 0.32), ca, sa, unit(r) * period}
	case classChecker:
		// A square rotated by ang whose box side is side.
		half := rad / (math.Abs(ca) + math.Abs(sa))
		sq := regular(4, half*math.Sqrt2, ang+math.Pi/4)
		period := math.Max(3, 2*half/between(r, 3, 5))
		return sq, checker{period, ca, sa}
	case classRing:
		return ring{rad, rad * between(r, 0.45, 0.7)}, plain
	case classStar:
		return star(5, rad, between(r, 0.38, 0.5), ang), plain
	default:
		return regular(3, rad, ang), plain
	}
}

// distractorShape draws a non-object: plain shapes close to the classes'
// silhouettes, thick lines and speckled blobs.
func distractorShape(r *rand.Rand, side float64) (shape, fill) {
	rad := side / 2
	ang := unit(r) * 2 * math.Pi
	plain := shading{between(r, -0.5, 0.5) / rad, between(r, -0.5, 0.5) / rad}
	switch intn(r, 0, 5) {
	case 0:
		return disc{rad}, plain
	case 1:
		return regular(4, rad, ang), plain
	case 2:
		return regular(6, rad, ang), plain
	case 3:
		e := ellipse{rad, rad * between(r, 0.3, 0.7), math.Cos(ang), math.Sin(ang)}
		return e, plain
	case 4:
		length := rad * between(r, 1, 2)
		return capsule{length * math.Cos(ang) / 2, length * math.Sin(ang) / 2, math.Max(1, rad*between(r, 0.06, 0.2))}, plain
	default:
		return ellipse{rad, rad * between(r, 0.5, 1), math.Cos(ang), math.Sin(ang)}, speckle{r.Uint64()}
	}
}
