package serve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/gidedge/gidedge/infer"
)

// KServe v2 / Open Inference Protocol over REST.

type serverMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

type modelMetadata struct {
	Name     string             `json:"name"`
	Versions []string           `json:"versions"`
	Platform string             `json:"platform"`
	Inputs   []infer.TensorInfo `json:"inputs"`
	Outputs  []infer.TensorInfo `json:"outputs"`
}

type inferOutput struct {
	Name     string  `json:"name"`
	Shape    []int64 `json:"shape"`
	Datatype string  `json:"datatype"`
	Data     any     `json:"data"`
}

type inferResponse struct {
	ModelName    string        `json:"model_name"`
	ModelVersion string        `json:"model_version"`
	ID           string        `json:"id,omitempty"`
	Outputs      []inferOutput `json:"outputs"`
}

func (s *Server) handleServerMetadata(c echo.Context) error {
	return c.JSON(http.StatusOK, serverMetadata{Name: "gidedge", Version: s.cfg.Version, Extensions: []string{"model_repository"}})
}

func (s *Server) handleLive(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]bool{"live": true})
}

// handleReady is ready while a model is loaded and the server is not draining.
func (s *Server) handleReady(c echo.Context) error {
	select {
	case <-s.shutdown:
		return echo.NewHTTPError(http.StatusServiceUnavailable, "serve: shutting down")
	default:
	}
	return c.JSON(http.StatusOK, map[string]bool{"ready": true})
}

// modelNamed returns the loaded model's description, or 404 for another name.
func (s *Server) modelNamed(name string) (infer.Description, error) {
	desc, _ := s.models.describe()
	if name != desc.Name {
		return desc, echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("serve: model %q not found; this server serves %q", name, desc.Name))
	}
	return desc, nil
}

func (s *Server) handleModelMetadata(c echo.Context) error {
	desc, err := s.modelNamed(c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, modelMetadata{Name: desc.Name, Versions: []string{"1"}, Platform: "onnxruntime_onnx", Inputs: desc.Inputs, Outputs: desc.Outputs})
}

func (s *Server) handleModelReady(c echo.Context) error {
	desc, err := s.modelNamed(c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"name": desc.Name, "ready": true})
}

// handleInfer runs the model on caller-supplied tensors. The body is parsed
// only after the request is admitted, under its deadline and a decode slot,
// and streamed into tensors of the declared shapes: a large or slow body
// costs its own place in the queue, a bounded amount of memory and at most
// --timeout.
func (s *Server) handleInfer(c echo.Context) error {
	if _, err := s.modelNamed(c.Param("name")); err != nil {
		return err
	}
	req := c.Request()
	limit := s.cfg.MaxBodyBytes
	if req.ContentLength > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	release, err := s.admitRequest()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(req.Context(), s.cfg.RequestTimeout)
	defer cancel()
	// A client that sends slower than the deadline is cut off there, not
	// at the server's read timeout.
	deadline, _ := ctx.Deadline()
	_ = http.NewResponseController(c.Response()).SetReadDeadline(deadline)

	body := http.MaxBytesReader(c.Response(), req.Body, limit)
	m, done := s.models.acquire()
	defer done()
	var (
		in     *inferRequest
		decode time.Duration
	)
	large := req.ContentLength < 0 || req.ContentLength > largeBody
	slotWait, slotErr := s.decode(ctx, large, func() {
		start := time.Now()
		in, err = decodeInferRequest(ctx, body, m.desc.Inputs, int(limit/2))
		decode = time.Since(start)
	})
	if slotErr != nil {
		return slotErr
	}
	if err != nil {
		return s.requestError(ctx, err)
	}
	s.metrics.stageSeconds.WithLabelValues("decode").Observe(decode.Seconds())

	runStart := time.Now()
	outs, err := m.det.RunTensors(ctx, in.Inputs)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return err
		}
		// Inputs are checked against the model before the run, so what
		// remains is a request the model cannot take.
		return badRequest("%v", err)
	}
	s.metrics.stageSeconds.WithLabelValues("queue").Observe(slotWait.Seconds())
	s.metrics.stageSeconds.WithLabelValues("infer").Observe(time.Since(runStart).Seconds())

	want := map[string]bool{}
	for _, name := range in.Outputs {
		want[name] = true
	}
	resp := inferResponse{ModelName: m.desc.Name, ModelVersion: "1", ID: in.ID}
	for _, o := range outs {
		if len(in.Outputs) > 0 && !want[o.Name] {
			continue
		}
		delete(want, o.Name)
		resp.Outputs = append(resp.Outputs, inferOutput{Name: o.Name, Shape: o.Shape, Datatype: o.Datatype, Data: o.Data})
	}
	for name := range want {
		return badRequest("serve: requested output %q is not a model output", name)
	}
	return c.JSON(http.StatusOK, resp)
}

// largeBody is the infer body size above which decoding takes the large
// slot (a 320x320 image tensor in JSON is about 2 MB).
const largeBody = 1 << 20

// requestError sorts an infer body error: the deadline (504), the body
// limit (413), a failed read (the connection's), or a bad request (400).
func (s *Server) requestError(ctx context.Context, err error) error {
	var tooBig *http.MaxBytesError
	var netErr net.Error
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("serve: reading the infer request: %w", ctx.Err())
	case errors.As(err, &tooBig):
		return err
	case errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Errorf("serve: reading the infer request: %w", context.DeadlineExceeded)
	}
	return badRequest("serve: infer request: %v", err)
}

// handleLoad reloads the served model from its file (KServe repository
// extension); it answers once the new model serves requests.
func (s *Server) handleLoad(c echo.Context) error {
	if _, err := s.modelNamed(c.Param("name")); err != nil {
		return err
	}
	desc, err := s.Reload()
	if err != nil {
		return err // 500 through handleError, with the reason
	}
	return c.JSON(http.StatusOK, map[string]any{"name": desc.Name, "loaded": true, "adapter": desc.Adapter})
}
