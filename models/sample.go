package models

import (
	"hash/fnv"
	"math"
	"math/rand/v2"

	"github.com/gidedge/gidedge/dataset"
)

// Subsample picks the examples of one image that a two-stage loss trains
// on, as the reference implementations' samplers do: at most
// ⌊num·fraction⌋ of the positive candidates pos (fewer when there are
// fewer), then negatives from neg to fill num (fewer when there are
// fewer), each drawn uniformly without replacement with rng. The returned
// slices are new; pos and neg are not modified.
func Subsample(pos, neg []int, num int, fraction float32, rng *rand.Rand) (sampledPos, sampledNeg []int) {
	nPos := min(len(pos), int(float64(num)*float64(fraction)))
	nNeg := min(len(neg), num-nPos)
	return pick(pos, nPos, rng), pick(neg, nNeg, rng)
}

// pick returns m elements of from drawn without replacement (a partial
// Fisher–Yates shuffle of a copy).
func pick(from []int, m int, rng *rand.Rand) []int {
	c := append([]int(nil), from...)
	for i := 0; i < m; i++ {
		j := i + rng.IntN(len(c)-i)
		c[i], c[j] = c[j], c[i]
	}
	return c[:m]
}

// Salts that keep the RPN's and the box head's samplers apart.
const (
	saltRPN uint64 = 0x5250_4e5f_7361_6d70
	saltROI uint64 = 0x524f_495f_7361_6d70
)

// samplerFor returns the random source of one image's sampler in a
// training step. It is seeded from what the step computes (the image's
// position in the batch, its ground truth and the given network values:
// the RPN's logits, or the proposals), so sampling differs from step to
// step, needs no state of its own and repeats exactly when a run resumes
// from a checkpoint.
func samplerFor(salt uint64, image int, targets []dataset.Target, values []float32) *rand.Rand {
	h := fnv.New64a()
	var buf [8]byte
	put := func(v uint64) {
		for i := range buf {
			buf[i] = byte(v >> (8 * i))
		}
		h.Write(buf[:])
	}
	put(uint64(image))
	for _, t := range targets {
		put(math.Float64bits(t.Box.X1))
		put(math.Float64bits(t.Box.Y1))
		put(math.Float64bits(t.Box.X2))
		put(math.Float64bits(t.Box.Y2))
		put(uint64(t.Class))
	}
	for _, v := range values {
		put(uint64(math.Float32bits(v)))
	}
	s := h.Sum64()
	return rand.New(rand.NewPCG(s, s^salt))
}
