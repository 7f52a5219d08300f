package serve

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/labstack/echo/v4"
)

// frameHub hands the newest encoded frame to every MJPEG client. Clients
// that are slower than the camera skip frames instead of queueing them.
type frameHub struct {
	mu      sync.Mutex
	frame   []byte
	seq     uint64
	changed chan struct{} // closed and replaced on every publish
	closed  bool
	nclient int
}

func newFrameHub() *frameHub { return &frameHub{changed: make(chan struct{})} }

func (h *frameHub) publish(jpg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.frame = jpg
	h.seq++
	close(h.changed)
	h.changed = make(chan struct{})
}

// next returns the newest frame if it is newer than seen, and a channel
// closed when another arrives; ok is false once the hub is closed.
func (h *frameHub) next(seen uint64) (frame []byte, seq uint64, wait <-chan struct{}, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, seen, nil, false
	}
	if h.seq != seen {
		return h.frame, h.seq, h.changed, true
	}
	return nil, seen, h.changed, true
}

func (h *frameHub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.changed)
	}
}

func (h *frameHub) join(delta int) {
	h.mu.Lock()
	h.nclient += delta
	h.mu.Unlock()
}

func (h *frameHub) clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nclient
}

var errNoCamera = echo.NewHTTPError(http.StatusNotFound, "serve: no camera configured (start the server with --camera)")

const mjpegBoundary = "gidedgeframe"

// handleStream streams annotated camera frames as multipart/x-mixed-replace
// until the client leaves or the server drains.
func (s *Server) handleStream(c echo.Context) error {
	if s.camera == nil {
		return errNoCamera
	}
	hub := s.camera.hub
	hub.join(1)
	s.metrics.streamClients.Inc()
	defer func() {
		hub.join(-1)
		s.metrics.streamClients.Dec()
	}()
	w := c.Response()
	w.Header().Set(echo.HeaderContentType, "multipart/x-mixed-replace; boundary="+mjpegBoundary)
	w.Header().Set(echo.HeaderCacheControl, "no-cache, no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Flush()
	ctx := c.Request().Context()
	var seen uint64
	for {
		frame, seq, wait, ok := hub.next(seen)
		if !ok {
			return nil
		}
		if frame != nil {
			seen = seq
			if _, err := fmt.Fprintf(w, "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n", mjpegBoundary, len(frame)); err != nil {
				return nil
			}
			if _, err := w.Write(frame); err != nil {
				return nil
			}
			if _, err := w.Write([]byte("\r\n")); err != nil {
				return nil
			}
			w.Flush()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return nil
		case <-s.shutdown:
			return nil
		}
	}
}

func (s *Server) handleCameraStatus(c echo.Context) error {
	if s.camera == nil {
		return errNoCamera
	}
	st := s.camera.snapshot()
	code := http.StatusOK
	if !st.Ready {
		code = http.StatusServiceUnavailable
		c.Response().Header().Set(echo.HeaderRetryAfter, "1")
	}
	return c.JSON(code, st)
}

func (s *Server) handleLatestDetections(c echo.Context) error {
	if s.camera == nil {
		return errNoCamera
	}
	fd, ok := s.camera.latestDetections()
	if !ok {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "serve: camera has not produced a frame yet")
	}
	return c.JSON(http.StatusOK, fd)
}

type healthz struct {
	Status   string        `json:"status"`
	Model    string        `json:"model"`
	Adapter  string        `json:"adapter"`
	Provider string        `json:"provider"`
	LoadedAt string        `json:"loaded_at"`
	Camera   *CameraStatus `json:"camera,omitempty"`
}

// handleHealthz is 200 while a model serves requests; a camera that is not
// ready shows in the body but does not fail the probe, since /v1/detect
// still works without it.
func (s *Server) handleHealthz(c echo.Context) error {
	desc, at := s.models.describe()
	h := healthz{Status: "ok", Model: desc.Name, Adapter: desc.Adapter, Provider: desc.Provider, LoadedAt: at.UTC().Format("2006-01-02T15:04:05Z")}
	if s.camera != nil {
		st := s.camera.snapshot()
		h.Camera = &st
		if !st.Ready {
			h.Status = "degraded"
		}
	}
	code := http.StatusOK
	select {
	case <-s.shutdown:
		h.Status = "shutting_down"
		code = http.StatusServiceUnavailable
	default:
	}
	return c.JSON(code, h)
}
