package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/gowebpki/jcs"

	"github.com/xavyo/xavyo/internal/store"
)

const a2aCLI = "github.com/a2aproject/a2a-go/v2/cmd/a2a"

var a2aBuild builtOnce

// a2aBin builds the a2a CLI of a2a-go v2.3.1 once per test binary, in a
// scratch module (as its README says: go get, then go build).
func a2aBin(t *testing.T) string {
	t.Helper()
	dir := a2aBuild.get(t, a2aCLI, func(dir string) error {
		env := []string{"GOFLAGS="}
		for _, args := range [][]string{{"mod", "init", "a2acli"}, {"get", a2aCLI + "@v2.3.1"}, {"build", "-o", filepath.Join(dir, "a2a"), a2aCLI}} {
			if err := goBuild(dir, env, args...); err != nil {
				return err
			}
		}
		return nil
	})
	return filepath.Join(dir, "a2a")
}

// getJSON fetches a URL with an optional bearer token.
func getJSON(t *testing.T, c *http.Client, u, bearer string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// verifyCard checks a card's signature the way any verifier would: the
// RFC 8785 form of the card as received, without its signatures, against
// the detached JWS, with the key the header names from the tenant's JWKS.
func verifyCard(t *testing.T, h *harness, slug string, card []byte) error {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(card, &m); err != nil {
		t.Fatal(err)
	}
	var sigs []struct{ Protected, Signature string }
	if err := json.Unmarshal(m["signatures"], &sigs); err != nil || len(sigs) != 1 {
		t.Fatalf("signatures: %s", m["signatures"])
	}
	delete(m, "signatures")
	raw, _ := json.Marshal(m)
	payload, err := jcs.Transform(raw)
	if err != nil {
		t.Fatal(err)
	}
	_, body := h.do("GET", "/t/"+slug+"/jwks", nil, "Authorization", "")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("jwks: %s", body)
	}
	jws, err := jose.ParseDetached(sigs[0].Protected+".."+sigs[0].Signature, payload, []jose.SignatureAlgorithm{jose.ES256, jose.RS256})
	if err != nil {
		return err
	}
	hdr := jws.Signatures[0].Protected
	if jku, _ := hdr.ExtraHeaders["jku"].(string); jku != h.s.cfg.Admin.PublicURL+"/t/"+slug+"/jwks" {
		t.Fatalf("jku %q", jku)
	}
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("no key %q in the JWKS", hdr.KeyID)
	}
	_, err = jws.Verify(keys[0])
	return err
}

// TestA2ACardsAndDirectory: an agent that serves A2A gets a card generated
// from its NHI record, signed with the tenant's key (the signature
// verifies over the RFC 8785 form; a changed card does not); the directory
// lists only the cards of agents the caller may call, filtered by skill,
// tag or text; the a2a CLI discovers the card through the gateway.
func TestA2ACardsAndDirectory(t *testing.T) {
	for _, flavor := range []store.Flavor{store.SQLite, store.Postgres} {
		t.Run(flavor.String(), func(t *testing.T) {
			dataDir := t.TempDir()
			h := start(t, env(t, flavor, dataDir), nil)
			slug := uniqueSlug("a2a")
			_, tok := tenantAdmin(t, h, slug)
			owner := decodeMe(t, h, tok)
			resp, body := h.doAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "researcher", "name": "Researcher",
				"description": "Finds and summarizes papers", "owner_id": owner,
				"profile": map[string]any{"agent": map[string]any{"skills": []string{"search", "summarize"}, "a2a_endpoint": "http://127.0.0.1:9/a2a"}}})
			expect(t, resp, body, 201, "a2a agent")
			resp, body = h.doAs(tok, "POST", "/api/v1/nhis", map[string]any{"kind": "agent", "slug": "client-bot", "name": "Client", "owner_id": owner})
			expect(t, resp, body, 201, "calling agent")
			caller := decode[agentJSON](t, body)

			base := h.agent + "/t/" + slug + "/a2a/agents"
			code, card := getJSON(t, h.tls, base+"/researcher/.well-known/agent-card.json", "")
			if code != 200 {
				t.Fatalf("card: %d %s", code, card)
			}
			for _, want := range []string{`"name":"Researcher"`, `"url":"` + base + `/researcher"`, `"protocolBinding":"JSONRPC"`, `"protocolVersion":"1.0"`,
				`"tokenUrl":"` + h.s.cfg.Admin.PublicURL + "/t/" + slug + `/token"`, `"mtlsSecurityScheme"`, `"id":"summarize"`} {
				if !strings.Contains(string(card), want) {
					t.Fatalf("card lacks %s: %s", want, card)
				}
			}
			if err := verifyCard(t, h, slug, card); err != nil {
				t.Fatalf("the card's signature does not verify: %v", err)
			}
			forged := strings.Replace(string(card), `"name":"Researcher"`, `"name":"Researcher (official)"`, 1)
			if err := verifyCard(t, h, slug, []byte(forged)); err == nil {
				t.Fatal("a changed card still verifies")
			}
			for _, path := range []string{"/nobody/.well-known/agent-card.json", "/client-bot/.well-known/agent-card.json"} {
				if code, body := getJSON(t, h.tls, base+path, ""); code != 404 {
					t.Errorf("%s: %d %s", path, code, body)
				}
			}
			if code, body := getJSON(t, h.tls, h.agent+"/t/"+uniqueSlug("none")+"/a2a/agents/researcher/.well-known/agent-card.json", ""); code != 404 {
				t.Errorf("unknown tenant: %d %s", code, body)
			}
			if code, body := getJSON(t, h.tls, h.agent+"/.well-known/agent-card.json", ""); code != 200 || !strings.Contains(string(body), `"name":"xavyo"`) {
				t.Errorf("gateway card: %d %s", code, body)
			}

			// The directory shows what the caller may call.
			token := func(resource string) string {
				code, out := h.form("/t/"+slug+"/token", url.Values{"grant_type": {"client_credentials"}, "resource": {resource}, "scope": {"a2a"}},
					caller.ClientID, caller.ClientSecret)
				if code != 200 {
					t.Fatalf("token: %d %v", code, out)
				}
				return out["access_token"].(string)
			}
			dirTok := token(base)
			names := func(query string) string {
				t.Helper()
				code, body := getJSON(t, h.tls, base+query, dirTok)
				if code != 200 {
					t.Fatalf("directory%s: %d %s", query, code, body)
				}
				var d struct{ Agents []struct{ Name string } }
				_ = json.Unmarshal(body, &d)
				var out []string
				for _, a := range d.Agents {
					out = append(out, a.Name)
				}
				return strings.Join(out, ",")
			}
			if got := names(""); got != "" {
				t.Fatalf("the directory shows agents the caller may not call: %s", got)
			}
			var app string
			waitFor(t, "the agent's application", func() bool {
				_, body := h.doAs(tok, "GET", "/api/v1/applications?type=a2a_agent", nil)
				for _, a := range decode[pageJSON[struct{ ID, Key string }]](t, body).Items {
					if a.Key == "a2a-researcher" {
						app = a.ID
					}
				}
				return app != ""
			})
			_, body = h.doAs(tok, "GET", "/api/v1/applications/"+app+"/entitlements", nil)
			call := decode[pageJSON[idJSON]](t, body).Items[0].ID
			grantEntitlement(t, h, tok, "nhi", caller.ID, call)
			for query, want := range map[string]string{"": "Researcher", "?skill=search": "Researcher", "?skill=cooking": "", "?tag=summarize": "Researcher",
				"?q=PAPERS": "Researcher", "?q=weather": ""} {
				if got := names(query); got != want {
					t.Errorf("directory%s: %q, want %q", query, got, want)
				}
			}
			for name, bearer := range map[string]string{"no token": "", "another audience": token(h.agent + "/t/" + slug + "/mcp"), "garbage": "xyz"} {
				if code, body := getJSON(t, h.tls, base, bearer); code != 401 {
					t.Errorf("directory with %s: %d %s", name, code, body)
				}
			}

			// jose verifies the signature too (Node, test/interop).
			dir, _ := filepath.Abs("../../test/interop")
			if _, err := os.Stat(filepath.Join(dir, "node_modules", "jose")); err == nil && flavor == store.SQLite {
				cmd := exec.Command("node", "a2acard.mjs")
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "CARD_URL="+base+"/researcher/.well-known/agent-card.json",
					"JWKS_URL="+h.s.cfg.Admin.PublicURL+"/t/"+slug+"/jwks", "NODE_EXTRA_CA_CERTS="+filepath.Join(dataDir, "agent-ca.pem"))
				if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "signature verified with jose") {
					t.Fatalf("a2acard.mjs: %v %s", err, out)
				}
			} else if os.Getenv("XAVYO_REQUIRE_INTEROP") == "1" && flavor == store.SQLite {
				t.Fatal("test/interop/node_modules is required (npm ci --prefix test/interop)")
			}

			// A real A2A client reads the card through the gateway.
			if _, err := exec.LookPath("go"); err != nil {
				t.Skip("no go tool for the a2a CLI")
			}
			bin := a2aBin(t)
			cmd := exec.Command(bin, "discover", base+"/researcher", "-o", "json")
			cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+filepath.Join(dataDir, "agent-ca.pem"))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Researcher") || !strings.Contains(string(out), base+"/researcher") {
				t.Fatalf("a2a discover: %v %s", err, out)
			}
		})
	}
}
