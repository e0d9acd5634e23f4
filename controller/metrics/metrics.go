// Package metrics exports the controller's state and events to
// Prometheus: tunnels by state, operations by result, upcalls, express
// reservation per link, the computed latency bounds, admission batch
// sizes, and the duration of monitoring rounds.
package metrics

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/xlane/xlane/controller/tunnels"
)

// Metrics is a tunnels.Observer backed by a private registry.
type Metrics struct {
	reg     *prometheus.Registry
	ops     *prometheus.CounterVec
	upcalls *prometheus.CounterVec
	// upcallC holds the counters of the known kinds and reasons, looked up
	// once: an admission in exact mode counts dozens of upcalls, and
	// WithLabelValues hashes its labels every time.
	upcallC [2][3]prometheus.Counter
	monitor prometheus.Histogram
	batch   prometheus.Histogram
	sent    prometheus.Histogram
	ctl     atomic.Pointer[tunnels.Controller] // set by Watch
	links   *linkGatherer
}

var _ tunnels.Observer = (*Metrics)(nil)

// New returns metrics with Go runtime and process collectors registered.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlane_operations_total", Help: "Service API operations by kind and result (ok, invalid_argument, resource_exhausted, not_found, permission_denied, unavailable, canceled, internal).",
		}, []string{"op", "result"}),
		upcalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xlane_upcalls_total", Help: "Upcalls queued for services by kind and reason.",
		}, []string{"kind", "reason"}),
		monitor: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "xlane_monitor_round_seconds", Help: "Duration of one monitoring round (statistics read and acted on).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: AdmissionBatchName, Help: "Queued admission requests served by one batch (max_batch caps it; large batches follow a stall).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9),
		}),
		sent: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: UpcallWaitName, Help: "Time from a TE change's commit until its BandwidthChanged upcall was handed to the service's watch stream: the controller's share of the upcall delay (the target is 10 ms end to end).",
			Buckets: upcallWaitBuckets,
		}),
	}
	for k := range m.upcallC {
		for r := range m.upcallC[k] {
			m.upcallC[k][r] = m.upcalls.WithLabelValues(kindLabel(tunnels.UpcallKind(k)), tunnels.Reason(r).String())
		}
	}
	m.links = &linkGatherer{reg: m.reg, ctl: m.ctl.Load}
	m.reg.MustRegister(m.ops, m.upcalls, m.monitor, m.batch, m.sent, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Operation implements tunnels.Observer.
func (m *Metrics) Operation(op, result string) { m.ops.WithLabelValues(op, result).Inc() }

// Upcall implements tunnels.Observer.
func (m *Metrics) Upcall(kind tunnels.UpcallKind, reason tunnels.Reason) {
	if int(kind) < len(m.upcallC) && kind >= 0 && int(reason) < len(m.upcallC[0]) && reason >= 0 {
		m.upcallC[kind][reason].Inc()
		return
	}
	m.upcalls.WithLabelValues(kindLabel(kind), reason.String()).Inc()
}

func kindLabel(kind tunnels.UpcallKind) string {
	if kind == tunnels.BandwidthTerminated {
		return "bandwidth_terminated"
	}
	return "bandwidth_changed"
}

// MonitorRound implements tunnels.Observer.
func (m *Metrics) MonitorRound(d time.Duration) { m.monitor.Observe(d.Seconds()) }

// AdmissionBatchName is the histogram of AdmissionBatch.
const AdmissionBatchName = "xlane_admission_batch_size"

// UpcallWaitName is the histogram of UpcallSent.
const UpcallWaitName = "xlane_upcall_wait_seconds"

// upcallWaitBuckets bound the histogram's buckets (seconds): fine below the
// 10 ms target, which is one of them.
var upcallWaitBuckets = []float64{.00025, .0005, .001, .002, .003, .005, .0075, .01, .015, .02, .03, .05, .1, .25, 1}

// UpcallSent implements server.SentObserver.
func (m *Metrics) UpcallSent(wait time.Duration) { m.sent.Observe(wait.Seconds()) }

// AdmissionBatch implements tunnels.Observer.
func (m *Metrics) AdmissionBatch(n int) { m.batch.Observe(float64(n)) }

// Watch registers the collector of ctl's state (read at every scrape).
func (m *Metrics) Watch(ctl *tunnels.Controller) {
	m.reg.MustRegister(stateCollector{ctl})
	m.ctl.Store(ctl)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.links, promhttp.HandlerOpts{Registry: m.reg})
}

var (
	descTunnels = prometheus.NewDesc("xlane_tunnels", "Tunnels by state (express, demoted).", []string{"state"}, nil)
	descBound   = prometheus.NewDesc("xlane_tunnel_latency_bound_seconds", "Distribution of the latency bounds (min latency + max jitter) of express tunnels.", nil, nil)
)

// stateCollector turns a controller snapshot into gauges at scrape time.
type stateCollector struct{ ctl *tunnels.Controller }

func (stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTunnels, descBound} {
		ch <- d
	}
}

func (s stateCollector) Collect(ch chan<- prometheus.Metric) {
	st := s.ctl.Snapshot()
	ch <- prometheus.MustNewConstMetric(descTunnels, prometheus.GaugeValue, float64(st.Express), "express")
	ch <- prometheus.MustNewConstMetric(descTunnels, prometheus.GaugeValue, float64(st.Demoted), "demoted")
	buckets := map[float64]uint64{}
	bounds := prometheus.ExponentialBuckets(1e-6, 2, 14) // 1 µs … 8 ms
	var sum float64
	for _, ns := range st.MaxLatencyNs {
		v := float64(ns) / 1e9
		sum += v
		for _, b := range bounds {
			if v <= b {
				buckets[b]++
			}
		}
	}
	ch <- prometheus.MustNewConstHistogram(descBound, uint64(len(st.MaxLatencyNs)), sum, buckets)
}
