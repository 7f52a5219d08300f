package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// InferTensor is a tensor in a KServe v2 infer request or response; Data is
// row-major, flat or nested.
type InferTensor struct {
	Name     string          `json:"name"`
	Shape    []int64         `json:"shape"`
	Datatype string          `json:"datatype"`
	Data     json.RawMessage `json:"data"`
}

// InferRequest is the body of POST /v2/models/{name}/infer.
type InferRequest struct {
	ID      string        `json:"id,omitempty"`
	Inputs  []InferTensor `json:"inputs"`
	Outputs []struct {
		Name string `json:"name"`
	} `json:"outputs,omitempty"`
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

func (s *Server) handleInfer(c echo.Context) error {
	if _, err := s.modelNamed(c.Param("name")); err != nil {
		return err
	}
	req := c.Request()
	if req.ContentLength > s.cfg.MaxBodyBytes {
		return &http.MaxBytesError{Limit: s.cfg.MaxBodyBytes}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), req.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		return err
	}
	var in InferRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return badRequest("serve: infer request JSON: %v", err)
	}
	if len(in.Inputs) == 0 {
		return badRequest("serve: infer request has no inputs")
	}
	tensors := make([]infer.RawTensor, len(in.Inputs))
	for i, t := range in.Inputs {
		if t.Datatype != "FP32" {
			return badRequest("serve: input %q datatype %q, want FP32", t.Name, t.Datatype)
		}
		data, err := flattenFloats(t.Data)
		if err != nil {
			return badRequest("serve: input %q data: %v", t.Name, err)
		}
		tensors[i] = infer.RawTensor{Name: t.Name, Datatype: t.Datatype, Shape: t.Shape, Data: data}
	}

	release, err := s.admitRequest()
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(req.Context(), s.cfg.RequestTimeout)
	defer cancel()
	m, done := s.models.acquire()
	defer done()
	start := time.Now()
	outs, err := m.det.RunTensors(ctx, tensors)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return err
		}
		// Inputs are checked against the model before the run, so what
		// remains is a request the model cannot take.
		return badRequest("%v", err)
	}
	s.metrics.stageSeconds.WithLabelValues("infer").Observe(time.Since(start).Seconds())

	want := map[string]bool{}
	for _, o := range in.Outputs {
		want[o.Name] = true
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

// flattenFloats decodes a flat or nested JSON array of numbers.
func flattenFloats(raw json.RawMessage) ([]float32, error) {
	var flat []float32
	if err := json.Unmarshal(raw, &flat); err == nil {
		return flat, nil
	}
	var nested any
	if err := json.Unmarshal(raw, &nested); err != nil {
		return nil, err
	}
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case float64:
			flat = append(flat, float32(x))
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("want numbers or arrays of numbers, found %T", v)
		}
		return nil
	}
	if err := walk(nested); err != nil {
		return nil, err
	}
	return flat, nil
}

// handleLoad reloads the served model from its file (KServe repository
// extension); it answers once the new model serves requests.
func (s *Server) handleLoad(c echo.Context) error {
	if _, err := s.modelNamed(c.Param("name")); err != nil {
		return err
	}
	desc, err := s.Reload()
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, err.Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"name": desc.Name, "loaded": true, "adapter": desc.Adapter})
}
