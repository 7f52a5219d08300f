package benchlat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gidedge/gidedge/internal/sysmem"
)

// HTTPTarget POSTs images to a gidedge server's /v1/detect.
type HTTPTarget struct {
	base   string
	token  string
	client *http.Client
	model  string
}

// NewHTTPTarget checks that base is a gidedge server (GET /healthz names its
// model). concurrency sizes the connection pool so every worker keeps a
// warm connection.
func NewHTTPTarget(ctx context.Context, base, token string, concurrency int) (*HTTPTarget, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("benchlat: --url %q, want http://host:port of a gidedge server", base)
	}
	transport := &http.Transport{
		MaxIdleConns: concurrency + 4, MaxIdleConnsPerHost: concurrency + 4,
		IdleConnTimeout: time.Minute, DisableCompression: true,
	}
	t := &HTTPTarget{
		base: strings.TrimRight(base, "/"), token: token,
		client: &http.Client{Transport: transport, Timeout: 60 * time.Second},
	}
	req, err := t.request(ctx, http.MethodGet, "/healthz", nil, "")
	if err != nil {
		return nil, err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("benchlat: server %s: %w", t.base, err)
	}
	defer resp.Body.Close()
	var h struct {
		Status string `json:"status"`
		Model  string `json:"model"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != http.StatusOK || h.Model == "" {
		return nil, fmt.Errorf("benchlat: server %s/healthz answered %d (%v); is it `gidedge serve`?", t.base, resp.StatusCode, err)
	}
	t.model = h.Model
	return t, nil
}

func (t *HTTPTarget) request(ctx context.Context, method, path string, body []byte, contentType string) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, r)
	if err != nil {
		return nil, fmt.Errorf("benchlat: %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	return req, nil
}

// Name is the model the server reports.
func (t *HTTPTarget) Name() string { return t.model }

// Mode is "end-to-end".
func (t *HTTPTarget) Mode() string { return "end-to-end" }

// Detect sends one image and reads the whole reply.
func (t *HTTPTarget) Detect(ctx context.Context, image []byte) (Sample, error) {
	contentType := "image/jpeg"
	if bytes.HasPrefix(image, []byte("\x89PNG")) {
		contentType = "image/png"
	}
	req, err := t.request(ctx, http.MethodPost, "/v1/detect", image, contentType)
	if err != nil {
		return Sample{}, err
	}
	start := time.Now()
	resp, err := t.client.Do(req)
	if err != nil {
		return Sample{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	wall := time.Since(start)
	if err != nil {
		return Sample{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Sample{}, fmt.Errorf("POST %s/v1/detect: %d %s", t.base, resp.StatusCode, bytes.TrimSpace(body))
	}
	var r struct {
		Timing struct {
			Decode, Queue, Preprocess, Infer, Postprocess float64
		} `json:"timing_ms"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Sample{}, fmt.Errorf("POST %s/v1/detect: reply is not JSON: %w", t.base, err)
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	tm := r.Timing
	stages := ms(tm.Decode) + ms(tm.Queue) + ms(tm.Preprocess) + ms(tm.Infer) + ms(tm.Postprocess)
	return Sample{Session: ms(tm.Infer), Overhead: max(wall-stages, time.Nanosecond)}, nil
}

// RSS reads the server's process_resident_memory_bytes from /metrics.
func (t *HTTPTarget) RSS(ctx context.Context) (int64, error) {
	req, err := t.request(ctx, http.MethodGet, "/metrics", nil, "")
	if err != nil {
		return 0, err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "process_resident_memory_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return 0, fmt.Errorf("benchlat: %s/metrics: %w", t.base, err)
			}
			return int64(f), nil
		}
	}
	return 0, fmt.Errorf("benchlat: %s/metrics has no process_resident_memory_bytes", t.base)
}

// Close drops idle connections.
func (t *HTTPTarget) Close() error {
	t.client.CloseIdleConnections()
	return nil
}

// SelfRSS is this process's resident memory, from /proc/self/status.
func SelfRSS() (int64, error) {
	n, err := sysmem.Resident()
	if err != nil {
		return 0, fmt.Errorf("benchlat: resident memory: %w", err)
	}
	return n, nil
}
