package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Client ID Metadata Documents: a client_id that is an https URL names a
// JSON document, fetched through the egress client (private, loopback and
// metadata addresses refused unless egress.allow_private), which must
// carry the same client_id. Such clients are public (PKCE, no secret).

const (
	cimdTTL     = 5 * time.Minute
	cimdMaxSize = 64 << 10
)

type cimdEntry struct {
	client  *AppClient
	err     error
	expires time.Time
}

type cimdCache struct {
	mu      sync.Mutex
	entries map[string]cimdEntry
}

// IsMetadataDocumentID reports whether a client_id names a metadata document.
func IsMetadataDocumentID(clientID string) bool { return strings.HasPrefix(clientID, "https://") }

// metadataClient fetches, checks and caches a client metadata document.
func (s *Server) metadataClient(ctx context.Context, clientID string) (*AppClient, error) {
	now := s.cfg.Now()
	s.cimd.mu.Lock()
	if e, ok := s.cimd.entries[clientID]; ok && now.Before(e.expires) {
		s.cimd.mu.Unlock()
		return e.client, e.err
	}
	s.cimd.mu.Unlock()
	c, err := s.fetchMetadata(ctx, clientID)
	s.cimd.mu.Lock()
	if s.cimd.entries == nil || len(s.cimd.entries) > 10_000 {
		s.cimd.entries = map[string]cimdEntry{}
	}
	ttl := cimdTTL
	if err != nil {
		ttl = 30 * time.Second
	}
	s.cimd.entries[clientID] = cimdEntry{client: c, err: err, expires: now.Add(ttl)}
	s.cimd.mu.Unlock()
	return c, err
}

func (s *Server) fetchMetadata(ctx context.Context, clientID string) (*AppClient, error) {
	u, err := url.Parse(clientID)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Fragment != "" || u.User != nil || u.Path == "" || u.Path == "/" {
		return nil, fmt.Errorf("a client ID metadata document URL is https with a path")
	}
	if s.cfg.Fetch == nil {
		return nil, fmt.Errorf("client ID metadata documents are not enabled")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	// The client ID is the document's URL by definition (checked above);
	// the egress client refuses private and loopback addresses.
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, clientID, nil) //nolint:gosec // G704: see above
	req.Header.Set("Accept", "application/json")
	resp, err := s.cfg.Fetch.Do(req) //nolint:gosec // G704: the egress client
	if err != nil {
		return nil, fmt.Errorf("the client metadata document could not be fetched")
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the client metadata document answered %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, cimdMaxSize+1))
	if err != nil || len(raw) > cimdMaxSize {
		return nil, fmt.Errorf("the client metadata document is unreadable or too large")
	}
	var doc struct {
		ClientID                string   `json:"client_id"`
		ClientName              string   `json:"client_name"`
		RedirectURIs            []string `json:"redirect_uris"`
		TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
		Scope                   string   `json:"scope"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("the client metadata document is not JSON")
	}
	if doc.ClientID != clientID {
		return nil, fmt.Errorf("the document's client_id is not its own URL")
	}
	if doc.TokenEndpointAuthMethod != "" && doc.TokenEndpointAuthMethod != "none" {
		return nil, fmt.Errorf("only public clients (token_endpoint_auth_method none) use metadata documents here")
	}
	if len(doc.RedirectURIs) == 0 || len(doc.RedirectURIs) > 20 {
		return nil, fmt.Errorf("the document lists no redirect URIs")
	}
	for _, r := range doc.RedirectURIs {
		if validRedirect(r) != nil {
			return nil, fmt.Errorf("the document lists an unusable redirect URI")
		}
	}
	name := doc.ClientName
	if name == "" || len(name) > 200 {
		name = u.Host
	}
	scope := "openid profile email offline_access mcp a2a"
	if doc.Scope != "" {
		scope = doc.Scope
	}
	return &AppClient{ClientID: clientID, Name: name, ClientType: "public", TokenEndpointAuthMethod: "none", RedirectURIs: doc.RedirectURIs, Scope: scope}, nil
}
