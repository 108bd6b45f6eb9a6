package mcp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts tool calls per tool server, tool and decision.
type Metrics struct {
	calls   *prometheus.CounterVec
	latency *prometheus.HistogramVec
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
	reg.MustRegister(m.calls, m.latency)
	return m
}

func (m *Metrics) observe(server, tool, decision, status string, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(server, tool, decision, status).Inc()
	m.latency.WithLabelValues(server, decision).Observe(d.Seconds())
}
