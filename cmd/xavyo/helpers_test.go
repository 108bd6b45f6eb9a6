package main

import (
	"net/http"
	"testing"

	"github.com/xavyo/xavyo/app/apptest"
)

// Shapes and helpers the end-to-end tests of this package share.

type idJSON struct {
	ID string `json:"id"`
}

type userJSON struct {
	ID      string `json:"id"`
	Email   string `json:"email"`
	Version int64  `json:"version"`
}

type pageJSON[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func decode[T any](t *testing.T, b []byte) T { t.Helper(); return apptest.Decode[T](t, b) }

func expect(t *testing.T, resp *http.Response, body []byte, want int, what string) {
	t.Helper()
	apptest.Expect(t, resp, body, want, what)
}

func waitFor(t *testing.T, what string, cond func() bool) { t.Helper(); apptest.WaitFor(t, what, cond) }

// decodeMe is the id of the user a token belongs to.
func decodeMe(t *testing.T, h *harness, tok string) string {
	t.Helper()
	_, body := h.DoAs(tok, "GET", "/api/v1/me", nil)
	return decode[userJSON](t, body).ID
}
