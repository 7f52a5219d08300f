package models

import "math"

// Priors describe every prediction position of an input size, in the
// flattened order (level, y, x, anchor) that Flatten produces.
type Priors struct {
	Family         string
	InputH, InputW int
	// NumAnchors is A (1 for FCOS).
	NumAnchors int
	Levels     []PriorLevel
	// Anchors holds R·4 anchor boxes x1, y1, x2, y2 (RetinaNet and the RPN;
	// nil for FCOS).
	Anchors []float32
	// Points holds R·2 centres x, y of each position's cell.
	Points []float32
	// Strides holds the stride of each position's level.
	Strides []float32
	// Level holds each position's level index.
	Level []int
}

// PriorLevel is one pyramid level: its grid and its rows [Start, Start+Count).
type PriorLevel struct {
	Stride       int
	H, W         int
	Start, Count int
}

// Len is R, the number of positions.
func (p *Priors) Len() int { return len(p.Strides) }

// LevelSize is the side of a level's feature map for an input side of n
// pixels: each stride-2 convolution (3×3, padding 1, or 1×1) gives ⌈n/2⌉.
func LevelSize(n, level int) int {
	for range level {
		n = (n + 1) / 2
	}
	return n
}

// Priors returns the anchors (RetinaNet) or points (FCOS) of an h×w input.
// The result is cached and shared; callers must not modify it.
func (d *Detector) Priors(h, w int) *Priors {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := [2]int{h, w}
	if p, ok := d.priors[key]; ok {
		return p
	}
	p := makePriors(d.Config, h, w)
	d.priors[key] = p
	return p
}

func makePriors(c Config, h, w int) *Priors {
	p := &Priors{Family: c.Family, InputH: h, InputW: w, NumAnchors: c.NumAnchors()}
	shapes := anchorShapes(c)
	start := 0
	for li, level := range c.FPN.Levels {
		stride := 1 << level
		lh, lw := LevelSize(h, level), LevelSize(w, level)
		n := lh * lw * p.NumAnchors
		p.Levels = append(p.Levels, PriorLevel{Stride: stride, H: lh, W: lw, Start: start, Count: n})
		start += n
		s := float32(stride)
		for y := 0; y < lh; y++ {
			cy := (float32(y) + 0.5) * s
			for x := 0; x < lw; x++ {
				cx := (float32(x) + 0.5) * s
				for a := 0; a < p.NumAnchors; a++ {
					p.Points = append(p.Points, cx, cy)
					p.Strides = append(p.Strides, s)
					p.Level = append(p.Level, li)
					if shapes != nil {
						aw, ah := shapes[li][2*a], shapes[li][2*a+1]
						p.Anchors = append(p.Anchors, cx-aw/2, cy-ah/2, cx+aw/2, cy+ah/2)
					}
				}
			}
		}
	}
	return p
}

// anchorShapes returns per level the (width, height) of each anchor, ratio
// major (RetinaNet and the two-stage family's RPN); nil for FCOS.
func anchorShapes(c Config) [][]float32 {
	if c.Family == FamilyFCOS {
		return nil
	}
	out := make([][]float32, len(c.FPN.Levels))
	for li := range c.FPN.Levels {
		base := c.Anchors.Sizes[li]
		for _, r := range c.Anchors.Ratios {
			for _, s := range c.Anchors.Scales {
				size := float64(base * s)
				sr := math.Sqrt(float64(r))
				out[li] = append(out[li], float32(size/sr), float32(size*sr))
			}
		}
	}
	return out
}
