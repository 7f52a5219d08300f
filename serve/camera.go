package serve

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"gocv.io/x/gocv"

	"github.com/gidedge/gidedge/infer"
)

// CameraStatus is the camera's state as GET /v1/camera and /healthz report it.
type CameraStatus struct {
	Source          string    `json:"source"`
	Ready           bool      `json:"ready"`
	Error           string    `json:"error,omitempty"`
	Reconnects      int64     `json:"reconnects"`
	FramesRead      uint64    `json:"frames_read"`
	FramesProcessed uint64    `json:"frames_processed"`
	FramesDropped   uint64    `json:"frames_dropped"`
	LastFrame       time.Time `json:"last_frame,omitzero"`
}

// FrameDetections are the detections of the newest processed camera frame.
type FrameDetections struct {
	Frame      uint64          `json:"frame"`
	Time       time.Time       `json:"time"`
	Width      int             `json:"width"`
	Height     int             `json:"height"`
	Detections []DetectionJSON `json:"detections"`
	TimingMS   TimingJSON      `json:"timing_ms"`
}

// camera reads frames from a gocv VideoCapture in one goroutine and detects
// on the newest one in another: a frame that arrives while detection runs
// replaces the waiting one, so the loop never falls behind the camera.
type camera struct {
	srv    *Server
	source string
	isFile bool

	mu      sync.Mutex
	cond    *sync.Cond
	latest  gocv.Mat // newest frame, owned under mu
	seq     uint64   // frames read so far; latest is frame seq
	status  CameraStatus
	stopped bool

	hub    *frameHub
	dets   FrameDetections // under mu
	haveDT bool

	wg     sync.WaitGroup
	cancel context.CancelFunc
	ctx    context.Context
}

func newCamera(s *Server, source string) *camera {
	c := &camera{srv: s, source: source, isFile: isFileSource(source), hub: newFrameHub(), latest: gocv.NewMat()}
	c.cond = sync.NewCond(&c.mu)
	c.status.Source = source
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// isFileSource tells a video file (looped at its frame rate) from a device
// index or a network stream.
func isFileSource(src string) bool {
	if _, err := strconv.Atoi(src); err == nil {
		return false
	}
	return !strings.Contains(src, "://") && !strings.Contains(src, "!") // "!" marks a GStreamer pipeline
}

func (c *camera) start() {
	c.wg.Add(2)
	go c.captureLoop()
	go c.detectLoop()
}

// stop ends both loops. A capture blocked in a network read gets a few
// seconds; after that its goroutine is left to finish on its own.
func (c *camera) stop() {
	c.mu.Lock()
	c.stopped = true
	c.cond.Broadcast()
	c.mu.Unlock()
	c.cancel()
	c.hub.close()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		c.mu.Lock()
		c.latest.Close()
		c.mu.Unlock()
	case <-time.After(5 * time.Second):
		c.srv.log.Warn("camera capture did not stop within 5s", "source", c.source)
	}
}

func (c *camera) snapshot() CameraStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

func (c *camera) latestDetections() (FrameDetections, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dets, c.haveDT
}

func (c *camera) setError(err error) {
	c.mu.Lock()
	changed := c.status.Ready || c.status.Error != err.Error()
	c.status.Ready = false
	c.status.Error = err.Error()
	c.mu.Unlock()
	c.srv.metrics.cameraUp.Set(0)
	if changed { // log each new condition once, not every retry
		c.srv.log.Warn("camera not ready; reconnecting with back-off", "source", c.source, "err", err)
	}
}

// sleep waits d or until the camera stops; false means stopped.
func (c *camera) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

func (c *camera) captureLoop() {
	defer c.wg.Done()
	backoff := c.srv.cfg.CameraBackoffMin
	frame := gocv.NewMat()
	defer frame.Close()
	for attempt := 0; c.ctx.Err() == nil; attempt++ {
		if attempt > 0 {
			c.srv.metrics.cameraReconnects.Inc()
			c.mu.Lock()
			c.status.Reconnects++
			c.mu.Unlock()
		}
		got, err := c.readFrames(&frame)
		if c.ctx.Err() != nil {
			return
		}
		if got > 0 && c.isFile && err == nil {
			continue // end of a video file: loop it
		}
		if got > 0 {
			backoff = c.srv.cfg.CameraBackoffMin // it worked for a while: retry soon
		}
		c.setError(err)
		c.srv.log.Debug("camera reconnect scheduled", "source", c.source, "in", backoff, "err", err)
		if !c.sleep(backoff) {
			return
		}
		backoff = min(2*backoff, c.srv.cfg.CameraBackoffMax)
	}
}

// readFrames opens the source and reads until it fails or the camera stops.
// It returns how many frames it read; a nil error with frames read is the
// clean end of a file.
func (c *camera) readFrames(frame *gocv.Mat) (int, error) {
	if c.isFile {
		// Say why plainly, rather than through OpenCV's backend-by-backend noise.
		if _, err := os.Stat(c.source); err != nil {
			return 0, fmt.Errorf("serve: camera %s: cannot open: %w", c.source, err)
		}
	}
	vc, err := gocv.OpenVideoCapture(c.source)
	if err != nil || vc == nil || !vc.IsOpened() {
		if vc != nil {
			vc.Close()
		}
		return 0, fmt.Errorf("serve: camera %s: cannot open", c.source)
	}
	defer vc.Close()
	interval := time.Duration(0)
	if c.isFile {
		fps := vc.Get(gocv.VideoCaptureFPS)
		if !(fps >= 1 && fps <= 240) {
			fps = 30
		}
		interval = time.Duration(float64(time.Second) / fps)
	}
	n := 0
	next := time.Now()
	for c.ctx.Err() == nil {
		if !vc.Read(frame) || frame.Empty() {
			if n > 0 && c.isFile {
				return n, nil
			}
			return n, fmt.Errorf("serve: camera %s: read failed after %d frames", c.source, n)
		}
		if err := normaliseFrame(frame); err != nil {
			return n, fmt.Errorf("serve: camera %s: %w", c.source, err)
		}
		n++
		c.mu.Lock()
		c.latest, *frame = *frame, c.latest
		c.seq++
		c.status.FramesRead++
		c.status.LastFrame = time.Now()
		c.status.Error = ""
		if !c.status.Ready {
			c.status.Ready = true
			c.srv.log.Info("camera ready", "source", c.source, "width", c.latest.Cols(), "height", c.latest.Rows())
		}
		c.cond.Broadcast()
		c.mu.Unlock()
		c.srv.metrics.cameraUp.Set(1)
		c.srv.metrics.cameraFrames.WithLabelValues("read").Inc()
		if interval > 0 {
			next = next.Add(interval)
			if wait := time.Until(next); wait > 0 {
				if !c.sleep(wait) {
					break
				}
			} else {
				next = time.Now()
			}
		}
	}
	return n, nil
}

// normaliseFrame makes frame 8-bit BGR (3 channels) in place.
func normaliseFrame(frame *gocv.Mat) error {
	switch {
	case frame.Type() == gocv.MatTypeCV8UC3:
		return nil
	case frame.Type() == gocv.MatTypeCV8UC1:
		gocv.CvtColor(*frame, frame, gocv.ColorGrayToBGR)
	case frame.Type() == gocv.MatTypeCV8UC4:
		gocv.CvtColor(*frame, frame, gocv.ColorBGRAToBGR)
	default:
		return fmt.Errorf("frame type %v, want 8-bit gray, BGR or BGRA", frame.Type())
	}
	return nil
}

func (c *camera) detectLoop() {
	defer c.wg.Done()
	work := gocv.NewMat()
	defer work.Close()
	var last uint64
	for {
		c.mu.Lock()
		for c.seq == last && !c.stopped {
			c.cond.Wait()
		}
		if c.stopped {
			c.mu.Unlock()
			return
		}
		dropped := c.seq - last - 1
		if last == 0 {
			dropped = c.seq - 1 // frames before the first detection count too
		}
		c.latest, work = work, c.latest
		last = c.seq
		c.status.FramesDropped += dropped
		c.mu.Unlock()
		if dropped > 0 {
			c.srv.metrics.cameraFrames.WithLabelValues("dropped").Add(float64(dropped))
		}
		if err := c.process(&work, last); err != nil {
			c.srv.log.Warn("camera frame failed", "source", c.source, "err", err)
		}
	}
}

// process detects on one frame, publishes its detections, and draws and
// encodes it for the MJPEG stream.
func (c *camera) process(frame *gocv.Mat, seq uint64) error {
	pix, err := frame.DataPtrUint8()
	if err != nil {
		return err
	}
	packed := infer.Packed{Pix: pix, Width: frame.Cols(), Height: frame.Rows(), Stride: frame.Step(), BytesPerPixel: 3, Order: infer.OrderBGR}
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.RequestTimeout)
	defer cancel()
	m, done := c.srv.models.acquire()
	res, err := m.det.DetectPacked(ctx, packed, infer.Params{})
	done()
	if err != nil {
		return err
	}
	c.srv.metrics.observeTiming(res.Timing)
	c.srv.metrics.cameraFrames.WithLabelValues("processed").Inc()
	t := res.Timing
	fd := FrameDetections{Frame: seq, Time: time.Now(), Width: res.Width, Height: res.Height,
		Detections: detectionsJSON(res.Detections),
		TimingMS:   TimingJSON{Queue: ms(t.Wait), Preprocess: ms(t.Preprocess), Infer: ms(t.Infer), Postprocess: ms(t.Postprocess)}}
	c.mu.Lock()
	c.dets, c.haveDT = fd, true
	c.status.FramesProcessed++
	c.mu.Unlock()

	if c.hub.clients() == 0 {
		return nil // nobody watches: skip drawing and encoding
	}
	annotate(frame, res.Detections)
	buf, err := gocv.IMEncodeWithParams(gocv.JPEGFileExt, *frame, []int{gocv.IMWriteJpegQuality, 80})
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	jpg := append([]byte(nil), buf.GetBytes()...)
	buf.Close()
	c.hub.publish(jpg)
	return nil
}

var palette = []color.RGBA{
	{R: 230, G: 25, B: 75, A: 255}, {R: 60, G: 180, B: 75, A: 255}, {R: 255, G: 225, B: 25, A: 255},
	{R: 0, G: 130, B: 200, A: 255}, {R: 245, G: 130, B: 48, A: 255}, {R: 145, G: 30, B: 180, A: 255},
	{R: 70, G: 240, B: 240, A: 255}, {R: 240, G: 50, B: 230, A: 255},
}

// annotate draws each detection's box and "label score" onto frame (BGR).
func annotate(frame *gocv.Mat, dets []infer.Detection) {
	for _, d := range dets {
		// gocv takes RGBA and writes it in the Mat's BGR order.
		col := palette[d.Class%len(palette)]
		r := image.Rect(int(d.Box[0]), int(d.Box[1]), int(d.Box[2]), int(d.Box[3]))
		gocv.Rectangle(frame, r, col, 2)
		text := fmt.Sprintf("%s %.2f", d.Label, d.Score)
		size := gocv.GetTextSize(text, gocv.FontHersheySimplex, 0.5, 1)
		top := max(r.Min.Y-size.Y-6, 0)
		gocv.Rectangle(frame, image.Rect(r.Min.X, top, r.Min.X+size.X+6, top+size.Y+6), col, -1)
		gocv.PutText(frame, text, image.Pt(r.Min.X+3, top+size.Y+2), gocv.FontHersheySimplex, 0.5, color.RGBA{A: 255}, 1)
	}
}
