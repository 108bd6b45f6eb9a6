package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/xavyo/xavyo/internal/store"
)

// TestAgentPlaneRefusesBadText: NUL characters and invalid UTF-8 in the
// agent plane's paths, queries and token forms get 400 on both backends,
// before any store is asked.
func TestAgentPlaneRefusesBadText(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			h := start(t, env(t, flavor, t.TempDir()), nil)
			slug := uniqueSlug("text")
			tenantAdmin(t, h, slug)
			for _, tc := range []struct{ method, path, body string }{
				{"GET", "/t/" + slug + "/pki/crl?x=%ff%fe", ""},
				{"GET", "/t/" + slug + "/a2a/agents?q=a%00b", ""},
				{"GET", "/t/" + slug + "%00/a2a/agents", ""},
				{"POST", "/t/" + slug + "/oauth/token", "grant_type=client_credentials&client_id=a%00b"},
				{"POST", "/t/" + slug + "/oauth/token", "grant_type=client_credentials&scope=%ff"},
			} {
				req, _ := http.NewRequest(tc.method, h.agent+tc.path, strings.NewReader(tc.body))
				if tc.body != "" {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				resp, err := h.tls.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 400 || !strings.Contains(string(body), "invalid_request") {
					t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, resp.StatusCode, body)
				}
			}
		})
	}
}
