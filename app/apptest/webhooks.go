package apptest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// WebhookSink is a webhook endpoint that checks signatures itself
// (HMAC-SHA256 over "id.timestamp.body", as Standard Webhooks says) and
// fails the next requests when told. Serve it with httptest.NewServer.
type WebhookSink struct {
	mu     sync.Mutex
	secret []byte
	fail   int
	got    []map[string]any
	bad    []string
}

func (s *WebhookSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	defer s.mu.Unlock()
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(r.Header.Get("webhook-id") + "." + r.Header.Get("webhook-timestamp") + "."))
	m.Write(b)
	if r.Header.Get("webhook-signature") != "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)) {
		s.bad = append(s.bad, string(b))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if s.fail > 0 {
		s.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var ev map[string]any
	_ = json.Unmarshal(b, &ev)
	if ev["id"] != r.Header.Get("webhook-id") {
		s.bad = append(s.bad, "webhook-id differs from the body's id: "+string(b))
	}
	s.got = append(s.got, ev)
	w.WriteHeader(http.StatusNoContent)
}

// Types are the event types received, in order.
func (s *WebhookSink) Types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.got {
		out = append(out, fmt.Sprint(ev["type"]))
	}
	return out
}

// SetSecret sets the signing secret ("whsec_" and base64).
func (s *WebhookSink) SetSecret(secret string) {
	k, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	s.mu.Lock()
	s.secret = k
	s.mu.Unlock()
}

// Fail makes the next n deliveries fail with 503.
func (s *WebhookSink) Fail(n int) {
	s.mu.Lock()
	s.fail = n
	s.mu.Unlock()
}

// Events are the verified events received, in order.
func (s *WebhookSink) Events() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.got...)
}

// Bad are the deliveries whose signature or id did not verify.
func (s *WebhookSink) Bad() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}
