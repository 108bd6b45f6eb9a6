// Package health answers liveness and readiness: ready means the database
// answers and its schema is the one this binary expects.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// Checker checks readiness.
type Checker struct {
	DB *store.DB
	// Schema is the migration version this binary expects.
	Schema int
}

// Ready returns nil when the process can serve.
func (c *Checker) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := c.DB.Ping(ctx); err != nil {
		return apperr.Wrap(err, apperr.KindUnavailable, "database unreachable")
	}
	v, err := c.DB.SchemaVersion(ctx)
	if err != nil {
		return apperr.Wrap(err, apperr.KindUnavailable, "schema version unreadable")
	}
	if v != c.Schema {
		return apperr.New(apperr.KindUnavailable, "schema at step %d, this binary expects %d", v, c.Schema)
	}
	return nil
}

// Status is the JSON body of both endpoints.
type Status struct {
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Body returns the status code and body for a readiness result: only the
// public message of a failure (its cause stays in the logs).
func Body(err error) (int, []byte) {
	if err != nil {
		b, _ := json.Marshal(Status{Status: "unavailable", Error: apperr.PublicMessage(err)})
		return http.StatusServiceUnavailable, b
	}
	return http.StatusOK, []byte(`{"status":"ok"}`)
}

// Mount adds /healthz and /readyz to a net/http mux.
func Mount(mux *http.ServeMux, ready func(context.Context) error) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		code, body := Body(ready(r.Context()))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(body)
	})
}
