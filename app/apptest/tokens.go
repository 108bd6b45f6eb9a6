package apptest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// Agent is an agent NHI as the API answers its creation (the client
// secret is shown once).
type Agent struct {
	ID           string `json:"id"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// JWTHeader decodes a JWT's protected header (no verification).
func JWTHeader(t testing.TB, raw string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var out map[string]any
	if err != nil || json.Unmarshal(b, &out) != nil {
		t.Fatalf("not a JWT header: %s", raw)
	}
	return out
}

// JWTClaims decodes a JWT's claims (no verification).
func JWTClaims(t testing.TB, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	return c
}

// JSON is v as JSON text.
func JSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
