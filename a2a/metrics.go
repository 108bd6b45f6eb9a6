package a2a

import (
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/xavyo/xavyo/internal/metriclabel"
)

// Metrics counts A2A calls through the gateway per target agent (a
// registered agent; methods are the known ones). Values are cut to
// metriclabel.MaxLen; tenant ids appear only when the operator opts in.
type Metrics struct {
	set     metriclabel.Set
	calls   *prometheus.CounterVec
	denials *prometheus.CounterVec
	latency *prometheus.HistogramVec
}

// NewMetrics registers the A2A plane's metrics with reg; tenantLabels
// adds a tenant label to each.
func NewMetrics(reg prometheus.Registerer, tenantLabels bool) *Metrics {
	set := metriclabel.Set{Tenant: tenantLabels}
	m := &Metrics{
		set: set,
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xavyo_a2a_calls_total",
			Help: "A2A calls through the gateway, by target agent, method, decision and the target's HTTP status (empty when refused).",
		}, set.Names("agent", "method", "decision", "upstream_status")),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "xavyo_a2a_call_denials_total",
			Help: "A2A calls the gateway refused, by target agent and reason (no_grant, expired, approval_denied, approval_timeout, task_owner, unknown_entitlement, …).",
		}, set.Names("agent", "reason")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "xavyo_a2a_call_duration_seconds",
			Help:    "Time from an A2A request to the end of its answer (streams included), by target agent and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 120},
		}, set.Names("agent", "method")),
	}
	reg.MustRegister(m.calls, m.denials, m.latency)
	return m
}

// allowed records a forwarded call and its target's status (0: none).
func (m *Metrics) allowed(tenant uuid.UUID, agent, method string, status int, took time.Duration) {
	if m == nil {
		return
	}
	st := ""
	if status > 0 {
		st = strconv.Itoa(status)
	}
	m.calls.WithLabelValues(m.set.Values(tenant, agent, method, "allow", st)...).Inc()
	m.latency.WithLabelValues(m.set.Values(tenant, agent, method)...).Observe(took.Seconds())
}

// refused records a refused call.
func (m *Metrics) refused(tenant uuid.UUID, agent, method, reason string) {
	if m == nil {
		return
	}
	if reason == "" {
		reason = "other"
	}
	m.calls.WithLabelValues(m.set.Values(tenant, agent, method, "deny", "")...).Inc()
	m.denials.WithLabelValues(m.set.Values(tenant, agent, reason)...).Inc()
}
