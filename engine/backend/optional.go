package backend

// Interfaces a device may implement besides Backend. Callers test for them
// with a type assertion and fall back to the plain Backend methods.

// Figure is one named value for a run log, e.g.
// gidedge_cuda_memory_peak_bytes.
type Figure struct {
	Name  string
	Value float64
}

// Reporter is implemented by devices with counters worth a line of the run
// log (a GPU's memory). The CPU backends have nothing beyond MemStats.
type Reporter interface {
	Figures() []Figure
}

// PinnedHost is implemented by devices that copy from page-locked host
// memory asynchronously, on a copy queue that runs while kernels do (a
// GPU's second stream). A data loader builds its batches in such memory
// and the upload of the next batch overlaps the current step.
type PinnedHost interface {
	// AllocPinned returns n float32 of page-locked host memory.
	AllocPinned(n int) ([]float32, error)
	// FreePinned releases memory from AllocPinned (the whole slice it
	// returned), after waiting for copies from it.
	FreePinned(p []float32) error
	// UploadPinned starts copying src, which lies inside memory from
	// AllocPinned, into the Float32 buffer dst (len(src) == dst.Len()) and
	// returns at once. Kernels queued afterwards see dst's new values.
	// src must not change until WaitPinned(src) returns.
	UploadPinned(dst Buffer, src []float32)
	// WaitPinned returns once no upload from src is pending.
	WaitPinned(src []float32) error
}
