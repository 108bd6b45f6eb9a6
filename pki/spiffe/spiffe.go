// Package spiffe builds and parses xavyo's SPIFFE IDs:
// spiffe://<trust-domain>/t/<tenant-uuid>/<kind>/<id> (docs/design/0000-architecture.md §11).
package spiffe

import (
	"errors"
	"net/url"
	"strings"

	"github.com/google/uuid"
)

// ID is a parsed xavyo SPIFFE ID.
type ID struct {
	TrustDomain string
	TenantID    uuid.UUID
	// Kind is the NHI kind: agent, tool_server or service_account.
	Kind string
	// Name identifies the NHI inside its tenant (its UUID or slug).
	Name string
}

// Kinds that may appear in an ID.
var kinds = map[string]bool{"agent": true, "tool_server": true, "service_account": true}

// String renders the ID as a URI.
func (id ID) String() string {
	return "spiffe://" + id.TrustDomain + "/t/" + id.TenantID.String() + "/" + id.Kind + "/" + id.Name
}

// URL renders the ID as a *url.URL, for certificate URI SANs.
func (id ID) URL() *url.URL {
	return &url.URL{Scheme: "spiffe", Host: id.TrustDomain, Path: "/t/" + id.TenantID.String() + "/" + id.Kind + "/" + id.Name}
}

// Parse reads an ID and checks it belongs to trustDomain.
func Parse(u *url.URL, trustDomain string) (ID, error) {
	if u == nil || u.Scheme != "spiffe" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Port() != "" {
		return ID{}, errors.New("spiffe: not a SPIFFE ID")
	}
	if u.Host != trustDomain {
		return ID{}, errors.New("spiffe: foreign trust domain")
	}
	parts := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if len(parts) != 4 || parts[0] != "t" {
		return ID{}, errors.New("spiffe: path is not /t/<tenant>/<kind>/<id>")
	}
	tid, err := uuid.Parse(parts[1])
	if err != nil || tid == uuid.Nil || parts[1] != tid.String() {
		return ID{}, errors.New("spiffe: tenant is not a lowercase UUID")
	}
	if !kinds[parts[2]] {
		return ID{}, errors.New("spiffe: unknown kind")
	}
	if !validName(parts[3]) {
		return ID{}, errors.New("spiffe: bad id")
	}
	return ID{TrustDomain: u.Host, TenantID: tid, Kind: parts[2], Name: parts[3]}, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
