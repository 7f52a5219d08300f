package synth

import (
	"fmt"
	"math"
	"strings"
)

// A Preset names a difficulty of the generated set. Every preset draws
// from the same shapes and renderer; they differ in which classes appear,
// how large objects are, how much clutter, occlusion and noise there is.
type Preset string

const (
	// PresetBenchmark is the set every benchmark in benchmarks/RESULTS.md
	// was measured on (the package comment describes it). It is the
	// default, and its bytes for a given seed do not change.
	PresetBenchmark Preset = "benchmark"
	// PresetDemo is an easier set sized for `gidedge demo`, where a
	// teacher has a few minutes on two CPU cores: three classes told
	// apart by silhouette (ring, star, triangle), objects from an eighth to
	// two fifths of the image side, at most two distractors, no occlusion
	// between objects, nothing cut by the border, plain backgrounds, light
	// noise and high JPEG quality.
	PresetDemo Preset = "demo"
)

// Presets lists the preset names, the default first.
func Presets() []Preset { return []Preset{PresetBenchmark, PresetDemo} }

// recipe is what a preset sets. The benchmark recipe holds the constants
// the generator was written with; Render draws the same random numbers in
// the same order for every recipe, so only the values drawn from change.
type recipe struct {
	about   string // what the sets hold, one sentence (Preset.Description)
	classes []int  // indices into Classes; an object's class is its position here
	// objects per image when Options leave them zero
	minObjects, maxObjects int
	// object sides are drawn log-uniformly in
	// [max(minSidePx, minSideFrac·size), maxSideFrac·size]
	minSidePx, minSideFrac, maxSideFrac float64
	minDistractors, maxDistractors      int
	maxBlotches                         int     // soft background blotches, 0..n
	backgrounds                         int     // background kinds 0..n-1 (see canvas.background)
	overhang                            float64 // share of a shape's box that may hang over the border
	occlusion                           float64 // share of an earlier object's box a new shape may cover
	onDistractor                        float64 // share of an object's box that may lie on a distractor's
	minContrast                         float32 // luma difference of a shape from the background under its centre
	minNoise, maxNoise                  float64 // pixel noise σ
	minQuality, maxQuality              int     // JPEG quality
}

var recipes = map[Preset]recipe{
	PresetBenchmark: {
		about: "six classes told apart by texture (striped disc, dotted disc, checkered square) or fine shape (ring, star, triangle), " +
			"objects from 8 pixels to half the image side (small ones common), 1–6 distractors that are not objects, " +
			"occlusion up to 40%, objects cut by the border, textured backgrounds, pixel noise σ 1–9 and JPEG quality 75–95",
		classes:    []int{classStriped, classDotted, classChecker, classRing, classStar, classTriangle},
		minObjects: 1, maxObjects: 8,
		minSidePx: 8, minSideFrac: 0, maxSideFrac: 0.5,
		minDistractors: 1, maxDistractors: 6,
		maxBlotches: 3, backgrounds: 5,
		overhang: 0.25, occlusion: 0.4, onDistractor: 0.6,
		minContrast: 45,
		minNoise:    1, maxNoise: 9,
		minQuality: 75, maxQuality: 95,
	},
	PresetDemo: {
		about: "three classes told apart by silhouette (ring, star, triangle), objects from an eighth to two fifths of the image side, " +
			"0–2 distractors that are not objects, no occlusion, nothing cut by the border, plain or smooth backgrounds, " +
			"pixel noise σ 1–3 and JPEG quality 90–95",
		classes:    []int{classRing, classStar, classTriangle},
		minObjects: 2, maxObjects: 6,
		minSidePx: 8, minSideFrac: 0.125, maxSideFrac: 0.4,
		minDistractors: 0, maxDistractors: 2,
		maxBlotches: 0, backgrounds: 3,
		overhang: 0, occlusion: 0, onDistractor: 0,
		minContrast: 70,
		minNoise:    1, maxNoise: 3,
		minQuality: 90, maxQuality: 95,
	},
}

// recipe returns the preset's recipe; "" is the benchmark preset.
func (p Preset) recipe() (recipe, error) {
	if p == "" {
		p = PresetBenchmark
	}
	rc, ok := recipes[p]
	if !ok {
		names := make([]string, len(Presets()))
		for i, q := range Presets() {
			names[i] = string(q)
		}
		return recipe{}, fmt.Errorf("synth: preset %q, want one of %s", string(p), strings.Join(names, ", "))
	}
	return rc, nil
}

// Classes returns the class names of the preset's sets, in class-index
// order.
func (p Preset) Classes() ([]string, error) {
	rc, err := p.recipe()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rc.classes))
	for i, c := range rc.classes {
		out[i] = Classes[c]
	}
	return out, nil
}

// Description says in one sentence (no capital, no full stop) what the
// preset's sets hold; "" for an unknown preset.
func (p Preset) Description() string {
	rc, err := p.recipe()
	if err != nil {
		return ""
	}
	return rc.about
}

// sides returns the range object sides are drawn from at an image size.
func (rc recipe) sides(size int) (lo, hi float64) {
	return math.Max(rc.minSidePx, rc.minSideFrac*float64(size)), rc.maxSideFrac * float64(size)
}
