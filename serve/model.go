package serve

import (
	"fmt"
	"sync"
	"time"

	"github.com/gidedge/gidedge/infer"
)

// modelHandle is one loaded detector; refs counts the requests using it so
// a reload closes it only after the last of them finishes.
type modelHandle struct {
	det       *infer.Detector
	desc      infer.Description
	maxPixels int64 // image size limit for this model's input
	loadedAt  time.Time
	refs      sync.WaitGroup
}

// modelHolder swaps detectors atomically: a request takes the current handle
// (and a reference) under a read lock, a reload replaces it under the write
// lock, so no request ever sees a closed detector.
type modelHolder struct {
	open      func() (*infer.Detector, error)
	maxPixels func(infer.Preprocess) int64

	mu  sync.RWMutex
	cur *modelHandle

	reloadMu sync.Mutex     // one reload at a time
	retiring sync.WaitGroup // old handles still draining
}

func newModelHolder(open func() (*infer.Detector, error), maxPixels func(infer.Preprocess) int64) (*modelHolder, error) {
	h := &modelHolder{open: open, maxPixels: maxPixels}
	det, err := open()
	if err != nil {
		return nil, err
	}
	h.cur = h.handle(det)
	return h, nil
}

func (h *modelHolder) handle(det *infer.Detector) *modelHandle {
	desc := det.Describe()
	return &modelHandle{det: det, desc: desc, maxPixels: h.maxPixels(desc.Input), loadedAt: time.Now()}
}

// acquire returns the current model and the function that releases it.
func (h *modelHolder) acquire() (*modelHandle, func()) {
	h.mu.RLock()
	m := h.cur
	m.refs.Add(1)
	h.mu.RUnlock()
	return m, m.refs.Done
}

// describe returns the current model's description without holding it.
func (h *modelHolder) describe() (infer.Description, time.Time) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cur.desc, h.cur.loadedAt
}

// reload opens the model file again and swaps it in; the old detector is
// closed once the requests using it finish. On failure the old model stays.
func (h *modelHolder) reload() (infer.Description, error) {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	det, err := h.open()
	if err != nil {
		return infer.Description{}, fmt.Errorf("serve: reload model: %w", err)
	}
	next := h.handle(det)
	h.mu.Lock()
	old := h.cur
	h.cur = next
	h.mu.Unlock()
	h.retiring.Add(1)
	go func() {
		defer h.retiring.Done()
		old.refs.Wait()
		old.det.Close()
	}()
	return next.desc, nil
}

// close waits for every request and retired model, then frees the current one.
func (h *modelHolder) close() {
	h.reloadMu.Lock()
	defer h.reloadMu.Unlock()
	h.retiring.Wait()
	h.mu.Lock()
	cur := h.cur
	h.mu.Unlock()
	cur.refs.Wait()
	cur.det.Close()
}
