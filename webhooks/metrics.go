package webhooks

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts delivery attempts.
type Metrics struct {
	attempts *prometheus.CounterVec
}

// NewMetrics registers the webhook metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xavyo_webhook_delivery_attempts_total",
		Help: "Webhook delivery attempts, by outcome: delivered, retry (failed, to be tried again) or dead (failed for the last time).",
	}, []string{"outcome"})}
	reg.MustRegister(m.attempts)
	return m
}

func (m *Metrics) attempt(outcome string) {
	if m == nil {
		return
	}
	m.attempts.WithLabelValues(outcome).Inc()
}
