package dataset

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
)

// Augment configures training-time augmentation. The zero value turns it
// off: every sample gets the plain resize and its boxes unchanged.
type Augment struct {
	// FlipProb is the probability of a horizontal flip.
	FlipProb float64
	// ScaleMin and ScaleMax bound a random zoom relative to the plain
	// resize (drawn log-uniformly); with ScaleMax > 0 the zoomed image is
	// also placed at a random offset, cropping when it is larger than the
	// input. The crop is box-aware: it keeps at least one object at least
	// MinVisible visible when the image has any.
	ScaleMin, ScaleMax float64
	// MinVisible is the fraction of a box's area that must stay inside the
	// input for the box to be kept after a crop (default 0.3 when 0).
	MinVisible float64
	// Brightness, Contrast and Saturation are jitter strengths: each factor
	// is drawn from [1-s, 1+s]. Hue rotates the hue by up to ±Hue turns
	// (0.5 = half the colour wheel).
	Brightness, Contrast, Saturation, Hue float64
}

// DefaultAugment is a moderate recipe for training detectors from scratch.
func DefaultAugment() Augment {
	return Augment{
		FlipProb: 0.5, ScaleMin: 0.6, ScaleMax: 1.5, MinVisible: 0.3,
		Brightness: 0.25, Contrast: 0.25, Saturation: 0.3, Hue: 0.02,
	}
}

func (a Augment) enabled() bool {
	return a.FlipProb > 0 || a.ScaleMax > 0 || a.colorEnabled()
}

func (a Augment) colorEnabled() bool {
	return a.Brightness > 0 || a.Contrast > 0 || a.Saturation > 0 || a.Hue > 0
}

func (a Augment) validate() error {
	check := func(name string, v, lo, hi float64) error {
		if math.IsNaN(v) || v < lo || v > hi {
			return fmt.Errorf("dataset: augment %s is %v, want %v..%v", name, v, lo, hi)
		}
		return nil
	}
	for _, c := range []struct {
		name      string
		v, lo, hi float64
	}{
		{"flip probability", a.FlipProb, 0, 1},
		{"min visible", a.MinVisible, 0, 1},
		{"brightness", a.Brightness, 0, 1},
		{"contrast", a.Contrast, 0, 1},
		{"saturation", a.Saturation, 0, 1},
		{"hue", a.Hue, 0, 0.5},
	} {
		if err := check(c.name, c.v, c.lo, c.hi); err != nil {
			return err
		}
	}
	if a.ScaleMax != 0 && !(a.ScaleMin > 0 && a.ScaleMin <= a.ScaleMax && a.ScaleMax <= 10) {
		return fmt.Errorf("dataset: augment scale range %v..%v, want 0 < min <= max <= 10 (or both 0 for none)", a.ScaleMin, a.ScaleMax)
	}
	return nil
}

// splitmix64 is a bijective mixer, used to derive independent seeds.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// newRand returns a PCG generator that is a pure function of its keys.
// Only PCG's output is used (through uniform and float01), never the
// library's derived helpers, so a sequence does not change across Go
// releases and a resumed run sees the same numbers.
func newRand(keys ...uint64) *rand.Rand {
	a, b := uint64(0x6a09e667f3bcc908), uint64(0xbb67ae8584caa73b)
	for _, k := range keys {
		a = splitmix64(a ^ k)
		b = splitmix64(b ^ a)
	}
	return rand.New(rand.NewPCG(a, b))
}

// uniform returns an integer in [0, n) (Lemire's multiply-shift; the tiny
// bias is irrelevant here and keeps the sequence simple).
func uniform(r *rand.Rand, n int) int {
	hi, _ := bits.Mul64(r.Uint64(), uint64(n))
	return int(hi)
}

// float01 returns a float64 in [0, 1).
func float01(r *rand.Rand) float64 { return float64(r.Uint64()>>11) / (1 << 53) }

func between(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*float01(r) }

// permutation is a Fisher–Yates shuffle of 0..n-1.
func permutation(r *rand.Rand, n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j := uniform(r, i+1)
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// planAugment draws the geometry of one sample: flip, zoom and placement.
// base is the plain resize; objs are in source pixels.
func planAugment(r *rand.Rand, a Augment, base Transform, w, h int, objs []Object) Transform {
	t := base
	t.FlipX = a.FlipProb > 0 && float01(r) < a.FlipProb
	if a.ScaleMax <= 0 {
		return t
	}
	zoom := math.Exp(between(r, math.Log(a.ScaleMin), math.Log(a.ScaleMax)))
	t.ScaleX, t.ScaleY = base.ScaleX*zoom, base.ScaleY*zoom
	sw, sh := float64(t.SrcWidth)*t.ScaleX, float64(t.SrcHeight)*t.ScaleY
	// Offsets put the zoomed image anywhere from flush left to flush right
	// (negative offsets crop).
	xlo, xhi := math.Min(0, float64(w)-sw), math.Max(0, float64(w)-sw)
	ylo, yhi := math.Min(0, float64(h)-sh), math.Max(0, float64(h)-sh)
	minVis := a.minVisible()
	var candidates []Box
	for _, o := range objs {
		if !o.Crowd {
			candidates = append(candidates, o.Box)
		}
	}
	const tries = 8
	for i := 0; i < tries; i++ {
		t.PadX, t.PadY = between(r, xlo, xhi), between(r, ylo, yhi)
		if len(candidates) == 0 || anyVisible(t, candidates, w, h, minVis) {
			return t
		}
	}
	// Centre a random object, as far as the offset range allows.
	b := t.ToInput(candidates[uniform(r, len(candidates))])
	t.PadX = clamp(t.PadX+float64(w)/2-(b.X1+b.X2)/2, xlo, xhi)
	t.PadY = clamp(t.PadY+float64(h)/2-(b.Y1+b.Y2)/2, ylo, yhi)
	return t
}

func (a Augment) minVisible() float64 {
	if a.MinVisible > 0 {
		return a.MinVisible
	}
	return 0.3
}

func anyVisible(t Transform, boxes []Box, w, h int, minVis float64) bool {
	for _, b := range boxes {
		in := t.ToInput(b)
		if in.Area() > 0 && in.Clip(float64(w), float64(h)).Area() >= minVis*in.Area() {
			return true
		}
	}
	return false
}

// luma weights (ITU-R BT.601), as torchvision's grayscale.
const lumaR, lumaG, lumaB = 0.299, 0.587, 0.114

// planColor draws the colour jitter of one sample as one affine matrix:
// brightness, contrast around the image's mean luma, saturation around each
// pixel's luma, and a hue rotation about the grey axis.
func planColor(r *rand.Rand, a Augment, meanLuma float64) colorMatrix {
	if !a.colorEnabled() {
		return identityColor
	}
	br := between(r, 1-a.Brightness, 1+a.Brightness)
	co := between(r, 1-a.Contrast, 1+a.Contrast)
	sa := between(r, 1-a.Saturation, 1+a.Saturation)
	hue := between(r, -a.Hue, a.Hue) * 2 * math.Pi

	// Start from identity (3x3 linear part L and offset o) and compose.
	L := [3][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}}
	var o [3]float64
	scale := func(s float64) {
		for i := range 3 {
			for j := range 3 {
				L[i][j] *= s
			}
			o[i] *= s
		}
	}
	apply := func(M [3][3]float64) {
		var nl [3][3]float64
		var no [3]float64
		for i := range 3 {
			for j := range 3 {
				for k := range 3 {
					nl[i][j] += M[i][k] * L[k][j]
				}
				no[i] += M[i][j] * o[j]
			}
		}
		L, o = nl, no
	}
	scale(br)
	// Contrast: v' = (v - m)*c + m with m the brightened mean luma.
	scale(co)
	for i := range 3 {
		o[i] += (1 - co) * meanLuma * br
	}
	// Saturation: v' = grey + s*(v - grey), grey = luma(v).
	var sat [3][3]float64
	lw := [3]float64{lumaR, lumaG, lumaB}
	for i := range 3 {
		for j := range 3 {
			sat[i][j] = (1 - sa) * lw[j]
			if i == j {
				sat[i][j] += sa
			}
		}
	}
	apply(sat)
	// Hue: rotate about the grey axis (1,1,1)/√3 by the Rodrigues formula.
	cosH, sinH := math.Cos(hue), math.Sin(hue)
	k := 1 / math.Sqrt(3)
	var rot [3][3]float64
	for i := range 3 {
		for j := range 3 {
			rot[i][j] = (1 - cosH) / 3
			if i == j {
				rot[i][j] += cosH
			}
		}
	}
	// Cross-product part: sin(h) * [k]x with k = (1,1,1)/√3.
	rot[0][1] -= sinH * k
	rot[0][2] += sinH * k
	rot[1][0] += sinH * k
	rot[1][2] -= sinH * k
	rot[2][0] -= sinH * k
	rot[2][1] += sinH * k
	apply(rot)

	var cm colorMatrix
	for i := range 3 {
		for j := range 3 {
			cm[i][j] = float32(L[i][j])
		}
		cm[i][3] = float32(o[i])
	}
	return cm
}
