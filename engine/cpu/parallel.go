package cpu

import "sync"

// minParallel is the element count below which pointwise loops stay on one
// goroutine: splitting smaller work costs more than it saves.
const minParallel = 1 << 15

// parallel runs fn over [0, n) split into contiguous chunks, one per
// worker, and returns when all chunks are done. The calling goroutine
// runs the first chunk.
func (b *Backend) parallel(n int, fn func(lo, hi int)) {
	w := min(b.workers, n)
	if w <= 1 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	var wg sync.WaitGroup
	chunk := (n + w - 1) / w
	for lo := chunk; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, hi)
	}
	fn(0, min(chunk, n))
	wg.Wait()
}

// parallelRange runs fn over element ranges of [0, n), split across the
// workers when n is large enough to pay for it. Each element belongs to
// exactly one range, so elementwise results do not depend on the split.
func (b *Backend) parallelRange(n int, fn func(lo, hi int)) {
	if n < minParallel || b.workers < 2 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	chunks := min(b.workers, n/(minParallel/2))
	per := (n + chunks - 1) / chunks
	b.parallel(chunks, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			fn(k*per, min(n, (k+1)*per))
		}
	})
}

// parallelColumns splits [0, cols) into chunks of at least 64 columns.
func (b *Backend) parallelColumns(cols int, fn func(c0, c1 int)) {
	chunks := min(b.workers, max(1, cols/64))
	per := (cols + chunks - 1) / chunks
	b.parallel(chunks, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			c0 := k * per
			c1 := min(cols, c0+per)
			if c0 < c1 {
				fn(c0, c1)
			}
		}
	})
}
