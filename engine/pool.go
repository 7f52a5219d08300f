package engine

import (
	"math/bits"
	"sync"
	"sync/atomic"
)

// Buffers are pooled by power-of-two capacity so a training step reuses the
// previous step's memory once Release has been called on its graph.
var pools [40]sync.Pool

var pooledBytes, freshBytes atomic.Int64

func bucket(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// getBuf returns a zeroed slice of length n.
func getBuf(n int) []float32 {
	if n == 0 {
		return nil
	}
	b := bucket(n)
	if v := pools[b].Get(); v != nil {
		s := (*v.(*[]float32))[:n]
		clear(s)
		pooledBytes.Add(int64(4 * n))
		return s
	}
	freshBytes.Add(int64(4 << b))
	return make([]float32, n, 1<<b)
}

// getBufNoZero is getBuf for callers that overwrite every element.
func getBufNoZero(n int) []float32 {
	if n == 0 {
		return nil
	}
	b := bucket(n)
	if v := pools[b].Get(); v != nil {
		pooledBytes.Add(int64(4 * n))
		return (*v.(*[]float32))[:n]
	}
	freshBytes.Add(int64(4 << b))
	return make([]float32, n, 1<<b)
}

func putBuf(s []float32) {
	c := cap(s)
	if c == 0 || c&(c-1) != 0 {
		return // not from the pool
	}
	s = s[:c]
	pools[bucket(c)].Put(&s)
}

// AllocStats reports bytes freshly allocated and bytes served from the pool
// since the process started; the engine benchmark uses it to show that a
// steady-state training step allocates little.
func AllocStats() (fresh, reused int64) { return freshBytes.Load(), pooledBytes.Load() }
