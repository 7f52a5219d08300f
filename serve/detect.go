package serve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
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
		return io.ReadAll(req.Body)
	case "multipart/form-data":
		if params["boundary"] == "" {
			return nil, badRequest("serve: multipart/form-data without a boundary")
		}
		mr, err := req.MultipartReader()
		if err != nil {
			return nil, badRequest("serve: multipart body: %v", err)
		}
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, badRequest("serve: multipart field \"image\" missing")
			}
			if err != nil {
				var tooBig *http.MaxBytesError
				if errors.As(err, &tooBig) {
					return nil, err
				}
				return nil, badRequest("serve: multipart body: %v", err)
			}
			if part.FormName() == "image" {
				data, err := io.ReadAll(part)
				part.Close()
				return data, err
			}
			part.Close()
		}
	}
	return nil, echo.NewHTTPError(http.StatusUnsupportedMediaType,
		fmt.Sprintf("serve: Content-Type %q not supported; send image/jpeg, image/png or multipart/form-data with field \"image\"", mediaType))
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

func (s *Server) handleDetect(c echo.Context) error {
	params, err := parseParams(c.QueryParams())
	if err != nil {
		return err
	}
	data, err := s.readImage(c)
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

	start := time.Now()
	img, err := infer.DecodeImage(data)
	if err != nil {
		return err
	}
	decode := time.Since(start)
	s.metrics.stageSeconds.WithLabelValues("decode").Observe(decode.Seconds())

	m, done := s.models.acquire()
	defer done()
	res, err := m.det.Detect(ctx, img, params)
	if err != nil {
		return s.inferError(err)
	}
	s.metrics.observeTiming(res.Timing)
	t := res.Timing
	return c.JSON(http.StatusOK, DetectResponse{
		Model: m.desc.Name, Width: res.Width, Height: res.Height,
		Detections: detectionsJSON(res.Detections),
		TimingMS: TimingJSON{Decode: ms(decode), Queue: ms(t.Wait), Preprocess: ms(t.Preprocess),
			Infer: ms(t.Infer), Postprocess: ms(t.Postprocess)},
	})
}

// inferError maps errors of infer calls: bad parameters are the client's.
func (s *Server) inferError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return err
	}
	return echo.NewHTTPError(http.StatusInternalServerError, err.Error())
}
