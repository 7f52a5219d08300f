package synth

import "math"

// A shape is drawn through its signed distance: positive inside, in pixels,
// so coverage = clamp(sdf + 0.5, 0, 1) anti-aliases the edge by one pixel.
type shape interface {
	// sdf is evaluated at a point relative to the shape's centre.
	sdf(x, y float64) float64
	// extent is the tight axis-aligned box relative to the centre.
	extent() (x1, y1, x2, y2 float64)
}

type disc struct{ r float64 }

func (d disc) sdf(x, y float64) float64 { return d.r - math.Hypot(x, y) }
func (d disc) extent() (float64, float64, float64, float64) {
	return -d.r, -d.r, d.r, d.r
}

// ring is a disc with a hole; its width is a fraction of the radius.
type ring struct{ r, inner float64 }

func (g ring) sdf(x, y float64) float64 {
	d := math.Hypot(x, y)
	return math.Min(g.r-d, d-g.inner)
}
func (g ring) extent() (float64, float64, float64, float64) {
	return -g.r, -g.r, g.r, g.r
}

// ellipse uses a first-order distance estimate, exact enough for one pixel
// of anti-aliasing at the eccentricities drawn here.
type ellipse struct{ a, b, cos, sin float64 }

func (e ellipse) sdf(x, y float64) float64 {
	u := e.cos*x + e.sin*y
	v := -e.sin*x + e.cos*y
	k := math.Hypot(u/e.a, v/e.b)
	if k == 0 {
		return math.Min(e.a, e.b)
	}
	grad := math.Hypot(u/(e.a*e.a), v/(e.b*e.b)) / k
	return (1 - k) / grad
}
func (e ellipse) extent() (float64, float64, float64, float64) {
	hx := math.Hypot(e.a*e.cos, e.b*e.sin)
	hy := math.Hypot(e.a*e.sin, e.b*e.cos)
	return -hx, -hy, hx, hy
}

// polygon is a closed polygon (convex or not) around the origin.
type polygon struct{ xs, ys []float64 }

func (p polygon) sdf(x, y float64) float64 {
	n := len(p.xs)
	best := math.Inf(1)
	inside := false
	for i, j := 0, n-1; i < n; j, i = i, i+1 {
		ax, ay, bx, by := p.xs[j], p.ys[j], p.xs[i], p.ys[i]
		ex, ey := bx-ax, by-ay
		wx, wy := x-ax, y-ay
		t := (wx*ex + wy*ey) / (ex*ex + ey*ey)
		t = math.Max(0, math.Min(1, t))
		dx, dy := wx-ex*t, wy-ey*t
		if d := dx*dx + dy*dy; d < best {
			best = d
		}
		if (ay > y) != (by > y) && x < ax+(y-ay)*ex/ey {
			inside = !inside
		}
	}
	d := math.Sqrt(best)
	if inside {
		return d
	}
	return -d
}

func (p polygon) extent() (float64, float64, float64, float64) {
	x1, y1, x2, y2 := math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for i := range p.xs {
		x1, x2 = math.Min(x1, p.xs[i]), math.Max(x2, p.xs[i])
		y1, y2 = math.Min(y1, p.ys[i]), math.Max(y2, p.ys[i])
	}
	return x1, y1, x2, y2
}

// regular returns a regular polygon of n vertices on a circle of radius r,
// starting at angle rot; star alternates outer radius r and inner radius
// r*inner over 2n vertices.
func regular(n int, r, rot float64) polygon {
	p := polygon{make([]float64, n), make([]float64, n)}
	for k := range n {
		a := rot + 2*math.Pi*float64(k)/float64(n)
		p.xs[k], p.ys[k] = r*math.Cos(a), r*math.Sin(a)
	}
	return p
}

func star(n int, r, inner, rot float64) polygon {
	p := polygon{make([]float64, 2*n), make([]float64, 2*n)}
	for k := range 2 * n {
		rad := r
		if k%2 == 1 {
			rad = r * inner
		}
		a := rot + math.Pi*float64(k)/float64(n)
		p.xs[k], p.ys[k] = rad*math.Cos(a), rad*math.Sin(a)
	}
	return p
}

// capsule is a thick line segment from the origin's -half to +half.
type capsule struct{ hx, hy, radius float64 }

func (c capsule) sdf(x, y float64) float64 {
	ex, ey := 2*c.hx, 2*c.hy
	wx, wy := x+c.hx, y+c.hy
	t := (wx*ex + wy*ey) / (ex*ex + ey*ey)
	t = math.Max(0, math.Min(1, t))
	return c.radius - math.Hypot(wx-ex*t, wy-ey*t)
}
func (c capsule) extent() (float64, float64, float64, float64) {
	hx, hy := math.Abs(c.hx)+c.radius, math.Abs(c.hy)+c.radius
	return -hx, -hy, hx, hy
}

// A fill gives the colour mix at a point relative to the centre: 0 is the
// primary colour, 1 the secondary.
type fill interface{ mix(x, y float64) float64 }

type solid struct{}

func (solid) mix(x, y float64) float64 { return 0 }

// stripes of the given period along direction (cos, sin), anti-aliased by
// scaling a sine so its zero crossings rise one unit per pixel.
type stripes struct{ period, cos, sin, phase float64 }

func (s stripes) mix(x, y float64) float64 {
	u := s.cos*x + s.sin*y + s.phase
	v := math.Sin(2*math.Pi*u/s.period)*s.period/(2*math.Pi) + 0.5
	return math.Max(0, math.Min(1, v))
}

// dots on a square lattice, rotated.
type dots struct{ period, radius, cos, sin, phase float64 }

func (d dots) mix(x, y float64) float64 {
	u := d.cos*x + d.sin*y + d.phase
	v := -d.sin*x + d.cos*y + d.phase
	u -= d.period * math.Round(u/d.period)
	v -= d.period * math.Round(v/d.period)
	return math.Max(0, math.Min(1, d.radius-math.Hypot(u, v)+0.5))
}

// checker squares, rotated.
type checker struct{ period, cos, sin float64 }

func (c checker) mix(x, y float64) float64 {
	u := c.cos*x + c.sin*y
	v := -c.sin*x + c.cos*y
	if (int(math.Floor(u/c.period))+int(math.Floor(v/c.period)))&1 == 0 {
		return 0
	}
	return 1
}

// shading is a soft linear gradient across a plain object, so plain shapes
// are not perfectly flat.
type shading struct{ gx, gy float64 }

func (s shading) mix(x, y float64) float64 {
	return math.Max(0, math.Min(1, 0.5+s.gx*x+s.gy*y))
}

// speckle is per-pixel hash noise, used by distractor blobs.
type speckle struct{ seed uint64 }

func (s speckle) mix(x, y float64) float64 {
	h := hash3(s.seed, uint64(int64(math.Floor(x))), uint64(int64(math.Floor(y))))
	return float64(h>>11) / (1 << 53)
}
