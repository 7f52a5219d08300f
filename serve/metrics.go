package serve

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/gidedge/gidedge/infer"
)

// metrics live in a registry per Server, so tests can run several servers
// in one process. Every name starts with gidedge_; durations are seconds.
type metrics struct {
	reg *prometheus.Registry

	requests       *prometheus.CounterVec   // route, method, code
	requestSeconds *prometheus.HistogramVec // route
	stageSeconds   *prometheus.HistogramVec // stage: decode, queue, preprocess, infer, postprocess
	inFlight       prometheus.Gauge
	rejected       *prometheus.CounterVec // reason: overload, timeout, body_too_large
	modelInfo      *prometheus.GaugeVec   // model, adapter, provider, sessions
	reloads        *prometheus.CounterVec // result: ok, error
	streamClients  prometheus.Gauge
	memoryLimit    prometheus.Gauge

	cameraUp         prometheus.Gauge
	cameraFrames     *prometheus.CounterVec // result: read, processed, dropped
	cameraReconnects prometheus.Counter
}

func newMetrics() *metrics {
	latency := prometheus.ExponentialBuckets(0.00025, 2, 15) // 0.25 ms .. 4 s
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gidedge_http_requests_total", Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "code"}),
		requestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gidedge_http_request_duration_seconds", Help: "HTTP request latency by route template.", Buckets: latency,
		}, []string{"route"}),
		stageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gidedge_stage_duration_seconds", Help: "Detection latency by stage (decode, queue, preprocess, infer, postprocess).", Buckets: latency,
		}, []string{"stage"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gidedge_http_in_flight_requests", Help: "Requests being served now (MJPEG streams excluded).",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gidedge_requests_rejected_total", Help: "Requests refused: overload (queue full), timeout, body_too_large.",
		}, []string{"reason"}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gidedge_model_info", Help: "The loaded model (value 1).",
		}, []string{"model", "adapter", "provider", "sessions"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gidedge_model_reloads_total", Help: "Model reloads by result.",
		}, []string{"result"}),
		streamClients: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gidedge_stream_clients", Help: "Open MJPEG stream connections.",
		}),
		memoryLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gidedge_memory_limit_bytes", Help: "The Go runtime's soft memory limit (compare process_resident_memory_bytes and go_memstats_heap_inuse_bytes).",
		}),
		cameraUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gidedge_camera_up", Help: "1 when the camera delivers frames, else 0.",
		}),
		cameraFrames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gidedge_camera_frames_total", Help: "Camera frames read, processed, and dropped as stale.",
		}, []string{"result"}),
		cameraReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gidedge_camera_reconnects_total", Help: "Camera open attempts after a failure.",
		}),
	}
	m.reg.MustRegister(m.requests, m.requestSeconds, m.stageSeconds, m.inFlight, m.rejected, m.modelInfo,
		m.reloads, m.streamClients, m.memoryLimit, m.cameraUp, m.cameraFrames, m.cameraReconnects,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) setModel(d infer.Description) {
	m.modelInfo.Reset()
	m.modelInfo.WithLabelValues(d.Name, d.Adapter, d.Provider, strconv.Itoa(d.Sessions)).Set(1)
}

func (m *metrics) observeTiming(t infer.Timing) {
	m.stageSeconds.WithLabelValues("queue").Observe(t.Wait.Seconds())
	m.stageSeconds.WithLabelValues("preprocess").Observe(t.Preprocess.Seconds())
	m.stageSeconds.WithLabelValues("infer").Observe(t.Infer.Seconds())
	m.stageSeconds.WithLabelValues("postprocess").Observe(t.Postprocess.Seconds())
}
