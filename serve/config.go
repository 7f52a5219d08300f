package serve

import (
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/gidedge/gidedge/infer"
)

// Config configures a Server. Zero fields take the defaults listed.
type Config struct {
	ModelPath string // ONNX detector (required)
	Addr      string // listen address, default 127.0.0.1:8080

	Provider       string // "cpu" (default), "cuda", "tensorrt"
	DeviceID       int
	Sessions       int // ONNX Runtime sessions (parallel inferences), default 1
	IntraOpThreads int // threads per session, 0 = ONNX Runtime's choice
	TensorRTCache  string
	TensorRTFP16   bool
	Adapter        string // force a model family, "" = detect

	// QueueSize is how many requests may wait for a session beyond the
	// ones running; more get 503 with Retry-After. Default 4 x Sessions;
	// -1 means none (only Sessions requests at a time).
	QueueSize      int
	RequestTimeout time.Duration // per request, default 10s
	MaxBodyBytes   int64         // default 10 MB
	DrainTimeout   time.Duration // SIGTERM drain limit, default 30s

	// MaxPixels bounds the images /v1/detect decodes (width x height, read
	// from the header before any pixel); 0 means infer.DefaultMaxPixels for
	// the model's input, this machine's memory and Decoders.
	MaxPixels int64
	// Decoders is how many images or infer bodies are decoded at once,
	// at most one of them large (default: the number of CPUs).
	Decoders int
	// MemoryLimit is the Go runtime's soft memory limit Serve sets, so
	// memory freed after a burst goes back to the system: 0 means a quarter
	// of the memory available (unless GOMEMLIMIT is set), -1 leaves the
	// runtime's setting alone.
	MemoryLimit int64

	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every route but health probes; the viewer page and the MJPEG stream
	// also take ?access_token= (browsers cannot set headers on <img>).
	Token string

	// Camera is a V4L2 index ("0"), a video file or an RTSP/HTTP URL; empty
	// means no camera. Files are looped at their frame rate.
	Camera           string
	CameraBackoffMin time.Duration // first reconnect delay, default 500ms
	CameraBackoffMax time.Duration // reconnect delay cap, default 30s

	Version string       // reported by GET /v2
	Log     *slog.Logger // default: text to stderr at info level
}

func (c Config) withDefaults() Config {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.Provider == "" {
		c.Provider = infer.ProviderCPU
	}
	if c.Sessions <= 0 {
		c.Sessions = 1
	}
	switch {
	case c.QueueSize == 0:
		c.QueueSize = 4 * c.Sessions
	case c.QueueSize == -1:
		c.QueueSize = 0
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 10 << 20
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Decoders <= 0 {
		c.Decoders = runtime.GOMAXPROCS(0)
	}
	if c.CameraBackoffMin <= 0 {
		c.CameraBackoffMin = 500 * time.Millisecond
	}
	if c.CameraBackoffMax <= 0 {
		c.CameraBackoffMax = 30 * time.Second
	}
	if c.CameraBackoffMax < c.CameraBackoffMin {
		c.CameraBackoffMax = c.CameraBackoffMin
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.ModelPath == "":
		return fmt.Errorf("serve: no model: set --model to an ONNX detector")
	case c.QueueSize < 0:
		return fmt.Errorf("serve: queue size %d, want >= 0 (or -1 for none)", c.QueueSize)
	case c.MaxPixels < 0:
		return fmt.Errorf("serve: max pixels %d, want > 0 (or 0 for the default)", c.MaxPixels)
	case c.MemoryLimit < -1:
		return fmt.Errorf("serve: memory limit %d, want > 0, 0 for the default or -1 to leave it", c.MemoryLimit)
	}
	return nil
}

func (c Config) detectorOptions() infer.Options {
	return infer.Options{
		Sessions: c.Sessions,
		Adapter:  c.Adapter,
		Session: infer.SessionOptions{
			Provider: c.Provider, DeviceID: c.DeviceID, IntraOpThreads: c.IntraOpThreads,
			TensorRTCacheDir: c.TensorRTCache, TensorRTFP16: c.TensorRTFP16,
		},
	}
}
