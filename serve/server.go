// Package serve is gidedge's inference server: an echo v4 application that
// runs an ONNX detector (package infer) behind a REST route (POST /v1/detect),
// the KServe v2 / Open Inference Protocol routes, Prometheus metrics, and an
// optional camera loop (gocv) that streams annotated frames as MJPEG to a
// small viewer page.
//
// Under load the server stays predictable: a bounded admission queue answers
// 503 with Retry-After when full, each request has a deadline, bodies are
// capped, images are checked against a pixel limit from their header before
// decoding, decoding runs in a bounded number of slots (one for large work),
// KServe bodies are streamed into tensors of their declared shape, and a
// reload (SIGHUP or the KServe repository route) swaps models without failing
// requests that are running. SIGTERM drains gracefully, keep-alive
// connections included.
//
// Error policy: every HTTP error is a JSON body {"error": "..."} written by
// one echo HTTPErrorHandler; handlers return errors, mapped there to status
// codes (400 bad input, 401 token, 404 unknown model or route, 413 body too
// large, 415 content type, 503 overload or not ready, 504 timeout).
// Constructor errors start with "serve:" and wrap their cause.
package serve

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/gidedge/gidedge/infer"
	"github.com/gidedge/gidedge/internal/malloctrim"
	"github.com/gidedge/gidedge/internal/sysmem"
)

// Server is a configured gidedge inference server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	e       *echo.Echo
	models  *modelHolder
	metrics *metrics
	admit   chan struct{} // running + queued requests
	camera  *camera       // nil without --camera
	token   [32]byte      // sha256 of cfg.Token
	memory  int64         // bytes available to the process (0: unknown)

	decoders  chan struct{} // images and infer bodies being decoded
	largeSlot chan struct{} // of which large ones (one at a time)
	draining  atomic.Bool   // responses now close their connection
	busy      atomic.Int64  // requests being served (streams excluded)
	lastBusy  atomic.Int64  // unix nanoseconds the last request ended

	shutdown     chan struct{} // closed when draining starts: ends MJPEG streams
	shutdownOnce sync.Once
	closeOnce    sync.Once
}

// New loads the model and builds the routes. It starts nothing: call Serve
// or ListenAndServe, or use Handler in tests; Close frees the model.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	opts := cfg.detectorOptions()
	memory, err := sysmem.Total()
	if err != nil {
		cfg.Log.Warn("memory size unknown; image limits ignore it", "err", err)
	}
	maxPixels := func(pre infer.Preprocess) int64 {
		if cfg.MaxPixels > 0 {
			return cfg.MaxPixels
		}
		return infer.DefaultMaxPixels(pre, memory, cfg.Decoders)
	}
	models, err := newModelHolder(func() (*infer.Detector, error) { return infer.Open(cfg.ModelPath, opts) }, maxPixels)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Log,
		models:    models,
		metrics:   newMetrics(),
		admit:     make(chan struct{}, cfg.Sessions+cfg.QueueSize),
		token:     sha256.Sum256([]byte(cfg.Token)),
		memory:    memory,
		decoders:  make(chan struct{}, cfg.Decoders),
		largeSlot: make(chan struct{}, 1),
		shutdown:  make(chan struct{}),
	}
	desc, _ := models.describe()
	s.metrics.setModel(desc)
	if cfg.Camera != "" {
		s.camera = newCamera(s, cfg.Camera)
	}
	s.e = s.routes()
	return s, nil
}

func (s *Server) routes() *echo.Echo {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.Use(s.observe, s.closeWhenDraining, s.authenticate)

	e.GET("/healthz", s.handleHealthz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})))
	e.GET("/", s.handleViewer)

	e.POST("/v1/detect", s.handleDetect)
	e.GET("/v1/camera", s.handleCameraStatus)
	e.GET("/v1/detections/latest", s.handleLatestDetections)
	e.GET("/v1/stream.mjpeg", s.handleStream)

	e.GET("/v2", s.handleServerMetadata)
	e.GET("/v2/health/live", s.handleLive)
	e.GET("/v2/health/ready", s.handleReady)
	e.GET("/v2/models/:name", s.handleModelMetadata)
	e.GET("/v2/models/:name/ready", s.handleModelReady)
	e.POST("/v2/models/:name/infer", s.handleInfer)
	e.POST("/v2/repository/models/:name/load", s.handleLoad)
	return e
}

// Handler is the HTTP handler of every route.
func (s *Server) Handler() http.Handler { return s.e }

// Reload re-reads the model file and swaps it in atomically.
func (s *Server) Reload() (infer.Description, error) {
	desc, err := s.models.reload()
	if err != nil {
		s.metrics.reloads.WithLabelValues("error").Inc()
		s.log.Error("model reload failed; keeping the loaded model", "err", err)
		return desc, err
	}
	s.metrics.reloads.WithLabelValues("ok").Inc()
	s.metrics.setModel(desc)
	s.log.Info("model reloaded", "model", desc.Name, "adapter", desc.Adapter, "path", desc.Path)
	return desc, nil
}

// ListenAndServe listens on cfg.Addr and calls Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve answers requests on ln (and runs the camera) until ctx is done, then
// drains: it stops accepting connections, answers every request already
// sent with "Connection: close" so keep-alive clients move on cleanly,
// waits until no request runs and every connection left has been idle for
// a moment, closes those, and frees the model; all within DrainTimeout. It
// returns nil after a clean drain. Serve also sets the Go runtime's soft
// memory limit (Config.MemoryLimit).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	conns := newConnTracker()
	hs := &http.Server{
		Handler:           s.e,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.cfg.RequestTimeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnState:         conns.track,
	}
	hs.RegisterOnShutdown(s.beginShutdown)
	s.setMemoryLimit()
	if s.camera != nil {
		s.camera.start()
	}
	desc, _ := s.models.describe()
	s.log.Info("serving", "addr", ln.Addr().String(), "model", desc.Name, "adapter", desc.Adapter,
		"provider", desc.Provider, "sessions", desc.Sessions, "camera", s.cfg.Camera)

	trimCtx, stopTrim := context.WithCancel(context.Background())
	defer stopTrim()
	go s.trimWhenIdle(trimCtx)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("draining requests in flight", "limit", s.cfg.DrainTimeout)
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	// Close the listener before any response says "Connection: close", so
	// a client that reconnects finds the port closed instead of being
	// accepted into a backlog that is about to be reset.
	_ = ln.Close()
	<-errc // the accept loop ends with the listener
	s.draining.Store(true)
	s.beginShutdown()
	conns.quiesce(drainCtx, drainIdleGrace)
	err := hs.Shutdown(drainCtx)
	s.Close()
	if err != nil {
		return fmt.Errorf("serve: drain: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// drainIdleGrace is how long a connection must have been idle before a
// drain closes it: a client that sends its next request sooner is served.
const drainIdleGrace = 500 * time.Millisecond

// connTracker follows each connection's state, for the drain.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]connState
}

type connState struct {
	state http.ConnState
	since time.Time
}

func newConnTracker() *connTracker { return &connTracker{conns: map[net.Conn]connState{}} }

func (t *connTracker) track(c net.Conn, st http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch st {
	case http.StateHijacked, http.StateClosed:
		delete(t.conns, c)
	default:
		t.conns[c] = connState{st, time.Now()}
	}
}

// quiesce waits until no connection is serving a request and every one
// left has been idle (or new without a request) for grace, or ctx ends.
func (t *connTracker) quiesce(ctx context.Context, grace time.Duration) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		t.mu.Lock()
		quiet := true
		for _, c := range t.conns {
			if c.state == http.StateActive || time.Since(c.since) < grace {
				quiet = false
				break
			}
		}
		t.mu.Unlock()
		if quiet {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// closeWhenDraining makes every response written once a drain has begun
// close its connection, so keep-alive clients reconnect (and find the port
// closed) instead of sending on a connection the drain would cut.
func (s *Server) closeWhenDraining(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Before(func() {
			if s.draining.Load() {
				c.Response().Header().Set(echo.HeaderConnection, "close")
			}
		})
		return next(c)
	}
}

// idleTrimAfter is how long the server must be idle before it hands freed
// memory back to the system.
const idleTrimAfter = time.Second

// trimWhenIdle returns the memory a burst used (large bodies, big tensors,
// decoded images) to the system once no request has run for idleTrimAfter:
// the Go runtime and glibc would otherwise keep it for reuse and an idle
// server's resident memory would stay at its peak. Once per idle spell it
// collects and scavenges the Go heap (a few milliseconds for a server's
// small live heap) and trims the C heap.
func (s *Server) trimWhenIdle(ctx context.Context) {
	tick := time.NewTicker(idleTrimAfter / 2)
	defer tick.Stop()
	var trimmedAt int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		last := s.lastBusy.Load()
		if last == 0 || s.busy.Load() > 0 || last == trimmedAt || time.Since(time.Unix(0, last)) < idleTrimAfter {
			continue
		}
		trimmedAt = last
		debug.FreeOSMemory()
		malloctrim.Trim() // what OpenCV and ONNX Runtime freed
	}
}

// setMemoryLimit applies Config.MemoryLimit and exports the result.
func (s *Server) setMemoryLimit() {
	limit := s.cfg.MemoryLimit
	if limit == 0 && os.Getenv("GOMEMLIMIT") == "" && s.memory > 0 {
		limit = max(s.memory/4, 256<<20)
	}
	if limit > 0 {
		debug.SetMemoryLimit(limit)
	}
	s.metrics.memoryLimit.Set(float64(debug.SetMemoryLimit(-1)))
}

func (s *Server) beginShutdown() { s.shutdownOnce.Do(func() { close(s.shutdown) }) }

// Close stops the camera and frees the model once requests using it finish.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.beginShutdown()
		if s.camera != nil {
			s.camera.stop()
		}
		s.models.close()
	})
}

// HandleSignals returns a context cancelled on SIGTERM or SIGINT (pass it to
// Serve for a graceful drain) and reloads the model on SIGHUP. Call stop to
// release the signals.
func HandleSignals(ctx context.Context, s *Server) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case sig := <-sigs:
				if sig == syscall.SIGHUP {
					_, _ = s.Reload()
					continue
				}
				s.log.Info("signal received", "signal", sig.String())
				cancel()
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		cancel()
		<-done
	}
}

// observe counts and times every request and turns handler errors into
// responses here, so the metrics see the final status code.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		stream := route == "/v1/stream.mjpeg"
		if !stream {
			s.metrics.inFlight.Inc()
			s.busy.Add(1)
			defer func() {
				s.lastBusy.Store(time.Now().UnixNano())
				s.busy.Add(-1)
				s.metrics.inFlight.Dec()
			}()
		}
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		code := c.Response().Status
		s.metrics.requests.WithLabelValues(route, c.Request().Method, fmt.Sprint(code)).Inc()
		if !stream {
			s.metrics.requestSeconds.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
		return nil
	}
}

// publicRoutes answer without a token so orchestrators can probe them.
var publicRoutes = map[string]bool{"/healthz": true, "/v2/health/live": true, "/v2/health/ready": true}

// queryTokenRoutes also take the token as ?access_token=: browsers cannot
// set headers on the viewer's <img src> (RFC 6750 section 2.3).
var queryTokenRoutes = map[string]bool{"/": true, "/v1/stream.mjpeg": true}

func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.cfg.Token == "" || publicRoutes[c.Path()] {
			return next(c)
		}
		header := c.Request().Header.Get(echo.HeaderAuthorization)
		query := c.QueryParams().Has("access_token")
		var given string
		switch {
		case header != "" && query:
			// RFC 6750 section 2: one method per request.
			return badRequest("serve: token sent both in the Authorization header and as access_token; send one")
		case header != "":
			// The scheme is case-insensitive (RFC 9110 section 11.1).
			scheme, token, _ := strings.Cut(header, " ")
			if strings.EqualFold(scheme, "Bearer") {
				given = strings.TrimLeft(token, " ")
			}
		case query && queryTokenRoutes[c.Path()]:
			given = c.QueryParam("access_token")
		case query:
			return s.unauthorized(c, "serve: access_token is taken only by the viewer and the MJPEG stream; send Authorization: Bearer <token>")
		}
		// Comparing fixed-length digests keeps the time independent of
		// where the strings differ and of the token's length.
		sum := sha256.Sum256([]byte(given))
		if given == "" || subtle.ConstantTimeCompare(sum[:], s.token[:]) != 1 {
			return s.unauthorized(c, "serve: missing or wrong bearer token")
		}
		return next(c)
	}
}

func (s *Server) unauthorized(c echo.Context, msg string) error {
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="gidedge"`)
	return echo.NewHTTPError(http.StatusUnauthorized, msg)
}

// handleError is the one place errors become HTTP responses.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, err.Error()
	var he *echo.HTTPError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		code = he.Code
		msg = fmt.Sprint(he.Message)
		if he.Internal != nil {
			msg += ": " + he.Internal.Error()
		}
		if code == http.StatusNotFound && msg == http.StatusText(http.StatusNotFound) {
			msg = fmt.Sprintf("serve: no route %s %s", c.Request().Method, c.Request().URL.Path)
		}
		if code == http.StatusMethodNotAllowed {
			msg = fmt.Sprintf("serve: method %s not allowed on %s", c.Request().Method, c.Request().URL.Path)
		}
	case errors.As(err, &tooBig):
		code = http.StatusRequestEntityTooLarge
		msg = fmt.Sprintf("serve: body larger than %d bytes", tooBig.Limit)
	case errors.Is(err, infer.ErrEmptyImage), errors.Is(err, infer.ErrUnknownFormat), errors.Is(err, infer.ErrCorruptImage):
		code = http.StatusBadRequest
	case errors.Is(err, infer.ErrImageTooLarge):
		code = http.StatusRequestEntityTooLarge
	case errors.Is(err, context.DeadlineExceeded):
		code = http.StatusGatewayTimeout
		msg = fmt.Sprintf("serve: no result within %s: %v", s.cfg.RequestTimeout, err)
		s.metrics.rejected.WithLabelValues("timeout").Inc()
	case errors.Is(err, context.Canceled):
		code = 499 // client closed the request; nobody reads this reply
	}
	if code == http.StatusRequestEntityTooLarge {
		s.metrics.rejected.WithLabelValues("body_too_large").Inc()
	}
	if code == http.StatusServiceUnavailable && c.Response().Header().Get(echo.HeaderRetryAfter) == "" {
		c.Response().Header().Set(echo.HeaderRetryAfter, "1")
	}
	if code >= 500 && code != http.StatusServiceUnavailable {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "code", code, "err", msg)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(code)
		return
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}
