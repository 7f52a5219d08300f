package engine

// minParallel is the element count below which pointwise loops stay on one
// goroutine: splitting smaller work costs more than it saves.
const minParallel = 1 << 15

// parallelRange runs fn over [0, n) in contiguous chunks on the backend's
// workers when n is large enough to pay for it.
func parallelRange(n int, fn func(lo, hi int)) {
	b := be()
	if n < minParallel || b.Workers() < 2 {
		if n > 0 {
			fn(0, n)
		}
		return
	}
	chunks := min(b.Workers(), n/(minParallel/2))
	per := (n + chunks - 1) / chunks
	b.Parallel(chunks, func(lo, hi int) {
		for k := lo; k < hi; k++ {
			fn(k*per, min(n, (k+1)*per))
		}
	})
}
