package mcp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts tool calls per tool server, tool and decision.
type Metrics struct {
	calls   *prometheus.CounterVec
	denials *prometheus.CounterVec
	latency *prometheus.HistogramVec
	up      *prometheus.GaugeVec
}

// NewMetrics registers the gateway's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xavyo_mcp_tool_calls_total",
			Help: "Tool calls through the MCP gateway, by tool server, tool, decision and upstream status.",
		}, []string{"server", "tool", "decision", "upstream_status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xavyo_mcp_tool_call_duration_seconds",
			Help:    "Time from a tools/call request to its answer, by tool server and decision.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"server", "decision"}),
	}
	m.denials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xavyo_mcp_tool_call_denials_total",
		Help: "Tool calls the gateway refused, by tool server and reason (no_grant, expired, time_window, argument, rate_limit, risk, approval_denied, approval_timeout, schema, unknown_tool, …).",
	}, []string{"server", "reason"})
	m.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "xavyo_mcp_upstream_up",
		Help: "1 when the last health check of a connected tool server succeeded on this replica, else 0.",
	}, []string{"tenant", "server"})
	reg.MustRegister(m.calls, m.latency, m.up, m.denials)
	return m
}

func (m *Metrics) observe(server, tool, decision, status string, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(server, tool, decision, status).Inc()
	m.latency.WithLabelValues(server, decision).Observe(d.Seconds())
}

func (m *Metrics) denied(server, reason string) {
	if m == nil {
		return
	}
	if reason == "" {
		reason = "other"
	}
	m.denials.WithLabelValues(server, reason).Inc()
}

func (m *Metrics) setUp(tenant, server string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.up.WithLabelValues(tenant, server).Set(v)
}
