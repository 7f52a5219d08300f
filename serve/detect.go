package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gidedge/gidedge/infer"
)

// DetectResponse is the body of POST /v1/detect.
type DetectResponse struct {
	Model      string          `json:"model"`
	Width      int             `json:"width"`
	Height     int             `json:"height"`
	Detections []DetectionJSON `json:"detections"`
	TimingMS   TimingJSON      `json:"timing_ms"`
}

// DetectionJSON is one detection; BBox is x, y, width, height in pixels of
// the original image and CategoryID the model's class index.
type DetectionJSON struct {
	BBox       [4]float32 `json:"bbox"`
	Score      float32    `json:"score"`
	CategoryID int        `json:"category_id"`
	Category   string     `json:"category"`
}

// TimingJSON is where a request's time went, in milliseconds.
type TimingJSON struct {
	Decode      float64 `json:"decode"`
	Queue       float64 `json:"queue"`
	Preprocess  float64 `json:"preprocess"`
	Infer       float64 `json:"infer"`
	Postprocess float64 `json:"postprocess"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func detectionsJSON(dets []infer.Detection) []DetectionJSON {
	out := make([]DetectionJSON, len(dets))
	for i, d := range dets {
		out[i] = DetectionJSON{
			BBox:  [4]float32{d.Box[0], d.Box[1], d.Box[2] - d.Box[0], d.Box[3] - d.Box[1]},
			Score: d.Score, CategoryID: d.Class, Category: d.Label,
		}
	}
	return out
}

func badRequest(format string, args ...any) error {
	return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

// parseParams reads score_threshold, iou_threshold and max_detections.
func parseParams(q url.Values) (infer.Params, error) {
	var p infer.Params
	float := func(name string, dst *float32) error {
		v := q.Get(name)
		if v == "" {
			return nil
		}
		f, err := strconv.ParseFloat(v, 32)
		if err != nil || !(f >= 0 && f <= 1) { // also rejects NaN
			return badRequest("serve: query %s=%q, want a number in 0..1", name, v)
		}
		*dst = float32(f)
		return nil
	}
	if err := float("score_threshold", &p.ScoreThreshold); err != nil {
		return p, err
	}
	if err := float("iou_threshold", &p.IoUThreshold); err != nil {
		return p, err
	}
	if v := q.Get("max_detections"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return p, badRequest("serve: query max_detections=%q, want an integer in 1..10000", v)
		}
		p.MaxDetections = n
	}
	return p, nil
}

// readImage returns the image bytes of a raw image/* body or of the
// multipart field "image", enforcing the body limit.
func (s *Server) readImage(c echo.Context) ([]byte, error) {
	req := c.Request()
	limit := s.cfg.MaxBodyBytes
	if req.ContentLength > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	req.Body = http.MaxBytesReader(c.Response(), req.Body, limit)
	header := req.Header.Get(echo.HeaderContentType)
	if header == "" {
		return nil, echo.NewHTTPError(http.StatusUnsupportedMediaType,
			"serve: Content-Type missing; send image/jpeg, image/png or multipart/form-data with field \"image\"")
	}
	mediaType, params, err := mime.ParseMediaType(header)
	if err != nil {
		return nil, echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("serve: Content-Type %q: %v", header, err))
	}
	switch mediaType {
	case "image/jpeg", "image/png", "application/octet-stream":
		return readBody(req.Body, req.ContentLength)
	case "multipart/form-data":
		if params["boundary"] == "" {
			return nil, badRequest("serve: multipart/form-data without a boundary")
		}
		return readMultipartImage(req.Body, params["boundary"])
	}
	return nil, echo.NewHTTPError(http.StatusUnsupportedMediaType,
		fmt.Sprintf("serve: Content-Type %q not supported; send image/jpeg, image/png or multipart/form-data with field \"image\"", mediaType))
}

// readBody reads a whole body, sized up front when its length is known.
func readBody(r io.Reader, length int64) ([]byte, error) {
	if length <= 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, length+1) // one more byte shows a body longer than it said
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	rest, err := io.ReadAll(r)
	return append(buf[:n], rest...), err
}

// readMultipartImage returns the one part named "image" of a multipart
// body. Other fields are read past; a second "image" is refused rather than
// silently ignored.
func readMultipartImage(body io.Reader, boundary string) ([]byte, error) {
	mr := multipart.NewReader(body, boundary)
	var image []byte
	found := false
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			if !found {
				return nil, badRequest("serve: multipart field \"image\" missing")
			}
			return image, nil
		}
		if err != nil {
			return nil, multipartError(err)
		}
		if part.FormName() == "image" {
			if found {
				part.Close()
				return nil, badRequest("serve: multipart field \"image\" appears twice; send one image per request")
			}
			found = true
			if image, err = io.ReadAll(part); err != nil {
				part.Close()
				return nil, multipartError(err)
			}
		} else if _, err := io.Copy(io.Discard, part); err != nil {
			part.Close()
			return nil, multipartError(err)
		}
		part.Close()
	}
}

// multipartError keeps a body-limit error (413) and makes the rest 400s.
func multipartError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return err
	}
	return badRequest("serve: multipart body: %v", err)
}

// admitRequest takes a place in the bounded queue or refuses with 503.
func (s *Server) admitRequest() (func(), error) {
	select {
	case s.admit <- struct{}{}:
		return func() { <-s.admit }, nil
	default:
		s.metrics.rejected.WithLabelValues("overload").Inc()
		return nil, echo.NewHTTPError(http.StatusServiceUnavailable,
			fmt.Sprintf("serve: overloaded: %d requests running or queued; retry later", cap(s.admit)))
	}
}

// decode runs work in a decode slot, waiting for one up to ctx: at most
// Decoders images or infer bodies are decoded at once, and of those at most
// one large one, which also runs at a lower CPU priority (runLowPriority), so
// a few huge uploads cannot take the CPU from the normal requests and the
// model. It returns how long it waited for the slot.
func (s *Server) decode(ctx context.Context, large bool, work func()) (time.Duration, error) {
	start := time.Now()
	if large {
		select {
		case s.largeSlot <- struct{}{}:
			defer func() { <-s.largeSlot }()
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("serve: waiting to decode: %w", ctx.Err())
		}
	}
	select {
	case s.decoders <- struct{}{}:
		defer func() { <-s.decoders }()
	case <-ctx.Done():
		return time.Since(start), fmt.Errorf("serve: waiting to decode: %w", ctx.Err())
	}
	waited := time.Since(start)
	if large {
		runLowPriority(work)
	} else {
		work()
	}
	return waited, nil
}

// largeImage says whether decoding an image of this size takes the large
// slot: more than four times the model input's pixels once decoded (JPEGs
// at their reduced scale).
func largeImage(info infer.ImageInfo, pre infer.Preprocess) bool {
	r := int64(1)
	if info.Format == "jpeg" {
		r = int64(pre.Reduction(info.Width, info.Height))
	}
	decoded := ((int64(info.Width) + r - 1) / r) * ((int64(info.Height) + r - 1) / r)
	return decoded > 4*int64(pre.Width)*int64(pre.Height)
}

func (s *Server) handleDetect(c echo.Context) error {
	params, err := parseParams(c.QueryParams())
	if err != nil {
		return err
	}
	data, err := s.readImage(c)
	if err != nil {
		return err
	}
	m, done := s.models.acquire()
	defer done()
	// The header alone refuses what is too large or not an image, before
	// the request takes a place in the queue.
	info, err := infer.CheckImage(data, m.maxPixels)
	if err != nil {
		return err
	}
	release, err := s.admitRequest()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(c.Request().Context(), s.cfg.RequestTimeout)
	defer cancel()

	pre := m.desc.Input
	var (
		in     *infer.Input
		decode time.Duration
	)
	slotWait, slotErr := s.decode(ctx, largeImage(info, pre), func() {
		start := time.Now()
		var img *infer.Image
		if img, err = infer.DecodeFor(data, pre, m.maxPixels); err != nil {
			return
		}
		decode = time.Since(start)
		in, err = m.det.PrepareImage(img)
		img.Close()
	})
	if slotErr != nil {
		return slotErr
	}
	if err != nil {
		return err
	}
	s.metrics.stageSeconds.WithLabelValues("decode").Observe(decode.Seconds())
	res, err := m.det.Run(ctx, in, params)
	if err != nil {
		return err // deadline: 504; anything else is the server's: 500, both through handleError
	}
	res.Timing.Wait += slotWait
	s.metrics.observeTiming(res.Timing)
	t := res.Timing
	return c.JSON(http.StatusOK, DetectResponse{
		Model: m.desc.Name, Width: res.Width, Height: res.Height,
		Detections: detectionsJSON(res.Detections),
		TimingMS: TimingJSON{Decode: ms(decode), Queue: ms(t.Wait), Preprocess: ms(t.Preprocess),
			Infer: ms(t.Infer), Postprocess: ms(t.Postprocess)},
	})
}
