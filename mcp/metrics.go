package mcp

import (
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xavyo/xavyo/internal/metriclabel"
)

// Metrics counts tool calls per tool server, tool and decision. Labels
// are bounded: only catalogued tools are named (any other name counts as
// "unknown"), values are cut to metriclabel.MaxLen, and tenant ids appear
// only when the operator opts in.
type Metrics struct {
	set     metriclabel.Set
	calls   *prometheus.CounterVec
	denials *prometheus.CounterVec
	latency *prometheus.HistogramVec
	up      *prometheus.GaugeVec
}

// NewMetrics registers the gateway's metrics with reg; tenantLabels adds
// a tenant label to each.
func NewMetrics(reg prometheus.Registerer, tenantLabels bool) *Metrics {
	set := metriclabel.Set{Tenant: tenantLabels}
	m := &Metrics{
		set: set,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xavyo_mcp_tool_calls_total",
			Help: "Tool calls through the MCP gateway, by tool server, tool, decision and upstream status.",
		}, set.Names("server", "tool", "decision", "upstream_status")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xavyo_mcp_tool_call_duration_seconds",
			Help:    "Time from a tools/call request to its answer, by tool server and decision.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, set.Names("server", "decision")),
	}
	m.denials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xavyo_mcp_tool_call_denials_total",
		Help: "Tool calls the gateway refused, by tool server and reason (no_grant, expired, time_window, argument, rate_limit, risk, approval_denied, approval_timeout, schema, unknown_tool, …).",
	}, set.Names("server", "reason"))
	m.up = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "xavyo_mcp_upstream_up",
		Help: "1 when the last health check of a connected tool server succeeded on this replica, else 0.",
	}, set.Names("server"))
	reg.MustRegister(m.calls, m.latency, m.up, m.denials)
	return m
}

func (m *Metrics) observe(tenant uuid.UUID, server, tool, decision, status string, d time.Duration) {
	if m == nil {
		return
	}
	m.calls.WithLabelValues(m.set.Values(tenant, server, tool, decision, status)...).Inc()
	m.latency.WithLabelValues(m.set.Values(tenant, server, decision)...).Observe(d.Seconds())
}

func (m *Metrics) denied(tenant uuid.UUID, server, reason string) {
	if m == nil {
		return
	}
	if reason == "" {
		reason = "other"
	}
	m.denials.WithLabelValues(m.set.Values(tenant, server, reason)...).Inc()
}

func (m *Metrics) setUp(tenant uuid.UUID, server string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.up.WithLabelValues(m.set.Values(tenant, server)...).Set(v)
}
