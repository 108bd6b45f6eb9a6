// Package governance holds who may do what: applications and their
// entitlements (an MCP tool is an entitlement of its tool server's
// application), roles with hierarchy and inducements, and assignments of
// entitlements or roles to users, groups and NHIs — with validity windows
// and call constraints. From them it builds, per tenant, the in-memory
// effective-access snapshot every decision is made from.
package governance

import (
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Entitlement kinds.
const (
	KindGeneric = "generic"
	KindMCPTool = "mcp_tool"
	KindA2ACall = "a2a_call"
)

// Approval states of entitlements (tools are callable only when approved).
const (
	Approved    = "approved"
	Pending     = "pending"
	Quarantined = "quarantined"
	Rejected    = "rejected"
)

// Subject types.
const (
	SubjectUser  = "user"
	SubjectGroup = "group"
	SubjectNHI   = "nhi"
)

// Assignment sources.
const (
	SourceDirect     = "direct"
	SourceRole       = "role"
	SourceBirthright = "birthright"
	SourceRequest    = "request"
)

// EventPrefix starts the change-event kinds of governance records.
const EventPrefix = "governance."

// Application is a system whose access is governed.
type Application struct {
	ID          uuid.UUID  `json:"id"`
	Key         string     `json:"key" doc:"[a-z0-9-]; a tool server's application has the tool server's slug"`
	Name        string     `json:"name"`
	Type        string     `json:"type" doc:"generic, mcp_server, a2a_agent, saas or internal"`
	Status      string     `json:"status" doc:"active, inactive or retired"`
	OwnerID     *uuid.UUID `json:"owner_id,omitempty"`
	NHIID       *uuid.UUID `json:"nhi_id,omitempty" doc:"the tool server or agent NHI this application stands for"`
	Description string     `json:"description"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	Version     int64      `json:"version"`
}

// Entitlement is one right within an application.
type Entitlement struct {
	ID             uuid.UUID  `json:"id"`
	ApplicationID  uuid.UUID  `json:"application_id"`
	Kind           string     `json:"kind" doc:"generic, mcp_tool or a2a_call"`
	Key            string     `json:"key" doc:"for mcp_tool: the tool name"`
	Name           string     `json:"name"`
	Description    string     `json:"description"`
	RiskLevel      string     `json:"risk_level" doc:"low, medium, high or critical"`
	Classification string     `json:"classification" doc:"public, internal, confidential or restricted"`
	OwnerID        *uuid.UUID `json:"owner_id,omitempty"`
	Requestable    bool       `json:"requestable"`
	ApprovalState  string     `json:"approval_state" doc:"approved, pending, quarantined or rejected; only approved entitlements grant access"`
	DefinitionHash string     `json:"definition_hash,omitempty" doc:"for tools: the hash of the pinned definition"`
	WorkflowID     *uuid.UUID `json:"workflow_id,omitempty" doc:"the approval workflow of requests for it (default: the tenant's default workflow)"`
	CreatedAt      time.Time  `json:"created_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	Version        int64      `json:"version"`
}

// Role bundles entitlements; it inherits its parent's and brings its
// induced roles along.
type Role struct {
	ID          uuid.UUID   `json:"id"`
	Key         string      `json:"key"`
	Name        string      `json:"name"`
	Type        string      `json:"type" doc:"business or it"`
	ParentID    *uuid.UUID  `json:"parent_id,omitempty" doc:"holding this role also grants what the parent grants"`
	OwnerID     *uuid.UUID  `json:"owner_id,omitempty"`
	Requestable bool        `json:"requestable"`
	WorkflowID  *uuid.UUID  `json:"workflow_id,omitempty" doc:"the approval workflow of requests for it (default: the tenant's default workflow)"`
	Description string      `json:"description"`
	Entitlement []uuid.UUID `json:"entitlement_ids"`
	Induces     []uuid.UUID `json:"induced_role_ids" doc:"roles that come with this one"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
	Version     int64       `json:"version"`
}

// TimeWindow is a weekly window in which calls are allowed.
type TimeWindow struct {
	// Days are weekdays, 0 = Sunday … 6 = Saturday (empty: every day).
	Days  []int  `json:"days,omitempty"`
	Start string `json:"start" doc:"HH:MM"`
	End   string `json:"end" doc:"HH:MM (exclusive); may be before start to wrap midnight"`
	TZ    string `json:"tz,omitempty" doc:"IANA time zone (default UTC)"`
}

// Constraints limit how an assignment may be used (docs/design/0000-architecture.md §11).
//
// Per-argument allow-lists: an argument named in ArgumentConstraints,
// ArgumentPrefixes or ArgumentPatterns must be present and match one entry
// of them (an exact value, a string prefix, or a pattern). ArgumentSchema
// is a JSON Schema (2020-12) fragment the whole arguments object must
// satisfy, checked after the tool's own input schema.
type Constraints struct {
	// ArgumentConstraints maps an argument name to the JSON values allowed.
	ArgumentConstraints map[string][]json.RawMessage `json:"argument_constraints,omitempty" doc:"argument name → allowed JSON values"`
	ArgumentPrefixes    map[string][]string          `json:"argument_prefixes,omitempty" doc:"argument name → allowed string prefixes"`
	ArgumentPatterns    map[string][]string          `json:"argument_patterns,omitempty" doc:"argument name → RE2 patterns a string must match whole"`
	ArgumentSchema      json.RawMessage              `json:"argument_schema,omitempty" doc:"JSON Schema (2020-12) the arguments object must satisfy; no external $ref"`
	RateLimitPerMinute  int                          `json:"rate_limit_per_minute,omitempty" doc:"calls per rolling minute per subject and tool, counted per replica by the enforcing gateway"`
	TimeWindows         []TimeWindow                 `json:"time_windows,omitempty"`
	RequiresApproval    bool                         `json:"requires_approval,omitempty"`
	// ApprovalReuseMinutes lets one approval cover identical calls (same
	// subject, tool and arguments) for that long; 0: each call is approved once.
	ApprovalReuseMinutes int `json:"approval_reuse_minutes,omitempty" doc:"with requires_approval: an approval covers identical calls for this many minutes (0: one call)"`
}

// Assignment grants an entitlement or a role to a subject.
type Assignment struct {
	ID            uuid.UUID   `json:"id"`
	SubjectType   string      `json:"subject_type" doc:"user, group or nhi"`
	SubjectID     uuid.UUID   `json:"subject_id"`
	TargetType    string      `json:"target_type" doc:"entitlement or role"`
	TargetID      uuid.UUID   `json:"target_id"`
	Source        string      `json:"source" doc:"direct, role, birthright or request"`
	ValidFrom     *time.Time  `json:"valid_from,omitempty"`
	ValidUntil    *time.Time  `json:"valid_until,omitempty"`
	Justification string      `json:"justification"`
	Constraints   Constraints `json:"constraints"`
	CreatedBy     string      `json:"created_by"`
	CreatedAt     time.Time   `json:"created_at"`
	UpdatedAt     time.Time   `json:"updated_at"`
	Version       int64       `json:"version"`
}

// ValidAt reports whether the assignment counts at t.
func (a *Assignment) ValidAt(t time.Time) bool {
	return (a.ValidFrom == nil || !t.Before(*a.ValidFrom)) && (a.ValidUntil == nil || t.Before(*a.ValidUntil))
}
