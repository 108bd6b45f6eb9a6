// Package metriclabel keeps the gateway's Prometheus labels bounded:
// values are cut to a fixed length, names no caller chose go in as one
// value, and tenant ids appear only when the operator opts in.
package metriclabel

import (
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxLen bounds a label value, in bytes.
const MaxLen = 64

// Unknown stands for any name the platform does not know (an unknown
// tool, say): such names never become label values of their own.
const Unknown = "unknown"

// Value cuts s to MaxLen bytes on a character boundary.
func Value(s string) string {
	if len(s) <= MaxLen {
		return s
	}
	s = s[:MaxLen]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Set is the label set of a family of metrics.
type Set struct {
	// Tenant adds a "tenant" label (the tenant's id) in front.
	Tenant bool
}

// Names returns the label names, with "tenant" first when on.
func (s Set) Names(names ...string) []string {
	if !s.Tenant {
		return names
	}
	return append([]string{"tenant"}, names...)
}

// Values returns bounded label values, the tenant's id first when on.
func (s Set) Values(tenant uuid.UUID, vals ...string) []string {
	out := make([]string, 0, len(vals)+1)
	if s.Tenant {
		out = append(out, tenant.String())
	}
	for _, v := range vals {
		out = append(out, Value(v))
	}
	return out
}
