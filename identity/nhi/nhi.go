// Package nhi manages non-human identities: agents, tool servers (upstream
// MCP servers) and service accounts. Each has a required human owner, a
// lifecycle with audited transitions, user permissions (use, manage,
// admin), a risk score, and an OAuth client whose secrets rotate with a
// grace period.
package nhi

import (
	"context"
	"errors"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Kinds.
const (
	KindAgent          = "agent"
	KindToolServer     = "tool_server"
	KindServiceAccount = "service_account"
)

// Lifecycle states.
const (
	StatusActive     = "active"
	StatusInactive   = "inactive"
	StatusSuspended  = "suspended"
	StatusDeprecated = "deprecated"
	StatusArchived   = "archived"
)

// EventKind is the change-event kind of NHIs.
const EventKind = "nhi"

// ActivityEvent is the kind of an NHI's changes that cannot alter access
// (its use): decision snapshots ignore it.
const ActivityEvent = "nhi.activity"

// transitions lists the allowed lifecycle moves; archived is final.
var transitions = map[string][]string{
	StatusActive:     {StatusInactive, StatusSuspended, StatusDeprecated},
	StatusInactive:   {StatusActive, StatusSuspended, StatusDeprecated, StatusArchived},
	StatusSuspended:  {StatusActive, StatusInactive, StatusDeprecated, StatusArchived},
	StatusDeprecated: {StatusActive, StatusArchived},
	StatusArchived:   {},
}

// AgentProfile describes an AI agent.
type AgentProfile struct {
	AgentType     string   `json:"agent_type,omitempty" doc:"e.g. assistant, autonomous, copilot"`
	ModelProvider string   `json:"model_provider,omitempty"`
	ModelName     string   `json:"model_name,omitempty"`
	RiskLevel     string   `json:"risk_level,omitempty" doc:"low, medium, high or critical (default medium)"`
	Skills        []string `json:"skills,omitempty"`
	A2AEndpoint   string   `json:"a2a_endpoint,omitempty" doc:"the agent's own A2A endpoint, if it serves one"`
	A2AVersion    string   `json:"a2a_version,omitempty" doc:"the A2A version that endpoint speaks: 1.0 (default) or 0.3"`
}

// ToolServerProfile describes an upstream MCP server.
type ToolServerProfile struct {
	Transport string   `json:"transport" doc:"streamable_http, sse or stdio"`
	URL       string   `json:"url,omitempty" doc:"for streamable_http and sse"`
	Command   string   `json:"command,omitempty" doc:"for stdio: an absolute path on the operator's allowlist"`
	Args      []string `json:"args,omitempty" doc:"for stdio: the command's arguments (at most 32)"`
	// CredentialRef names the credential xavyo presents upstream (never
	// the agent's own token).
	CredentialRef string `json:"credential_ref,omitempty"`
}

// ServiceAccountProfile describes a service account.
type ServiceAccountProfile struct {
	Purpose   string     `json:"purpose"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Profile holds the kind-specific fields; exactly the one of the NHI's kind.
type Profile struct {
	Agent          *AgentProfile          `json:"agent,omitempty"`
	ToolServer     *ToolServerProfile     `json:"tool_server,omitempty"`
	ServiceAccount *ServiceAccountProfile `json:"service_account,omitempty"`
}

// RiskFactor is one contribution to a risk score.
type RiskFactor struct {
	Factor string `json:"factor"`
	Points int    `json:"points"`
	Detail string `json:"detail"`
}

// NHI is a non-human identity.
type NHI struct {
	ID              uuid.UUID    `json:"id"`
	Kind            string       `json:"kind"`
	Slug            string       `json:"slug"`
	Name            string       `json:"name"`
	Description     string       `json:"description"`
	Status          string       `json:"status"`
	StatusReason    string       `json:"status_reason"`
	StatusChangedAt time.Time    `json:"status_changed_at"`
	OwnerID         *uuid.UUID   `json:"owner_id"`
	BackupOwnerID   *uuid.UUID   `json:"backup_owner_id,omitempty"`
	Profile         Profile      `json:"profile"`
	RiskScore       int          `json:"risk_score"`
	RiskFactors     []RiskFactor `json:"risk_factors"`
	ClientID        string       `json:"client_id" doc:"the NHI's OAuth client"`
	SPIFFEPath      string       `json:"spiffe_path" doc:"/t/{tenant}/{kind}/{id}: the path of its SPIFFE ID"`
	LastUsedAt      *time.Time   `json:"last_used_at,omitempty"`
	CreatedAt       time.Time    `json:"created_at"`
	UpdatedAt       time.Time    `json:"updated_at"`
	Version         int64        `json:"version"`
}

// CreateInput creates an NHI.
type CreateInput struct {
	Kind          string     `json:"kind"`
	Slug          string     `json:"slug"`
	Name          string     `json:"name"`
	Description   string     `json:"description,omitempty"`
	OwnerID       uuid.UUID  `json:"owner_id"`
	BackupOwnerID *uuid.UUID `json:"backup_owner_id,omitempty"`
	Profile       Profile    `json:"profile"`
}

// UpdateInput changes an NHI; absent fields stay. Kind and slug never change.
type UpdateInput struct {
	Name          *string    `json:"name,omitempty"`
	Description   *string    `json:"description,omitempty"`
	OwnerID       *uuid.UUID `json:"owner_id,omitempty"`
	BackupOwnerID *uuid.UUID `json:"backup_owner_id,omitempty" doc:"the nil UUID removes it"`
	Profile       *Profile   `json:"profile,omitempty" doc:"replaces the kind's profile"`
}

// TransitionInput moves an NHI through its lifecycle.
type TransitionInput struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// Auditor is what the service needs of the audit log.
type Auditor = audit.Recorder

// Users tells a user's status in the caller's transaction (apperr not
// found when the tenant has none): owners must be active users.
type Users interface {
	StatusTx(ctx context.Context, tx *store.Tx, id uuid.UUID) (string, error)
	ActiveAmongTx(ctx context.Context, tx *store.Tx, ids []uuid.UUID) (map[uuid.UUID]bool, error)
}

// Service manages the NHIs of the tenant in the request context.
type Service struct {
	DB       *store.DB
	Audit    Auditor
	Policies Policies
	// Users tells the status of owners (required).
	Users Users
	// StdioAllowlist is the operator's list of commands stdio tool servers may run.
	StdioAllowlist []string
	// Now is the clock (default store.Now).
	Now func() time.Time

	touchMu   sync.Mutex
	touched   map[uuid.UUID]time.Time
	touchOnce sync.Once
	touches   chan usedNHI
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Microsecond)
	}
	return store.Now()
}

var slugRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

func (s *Service) validateProfile(kind string, p *Profile) error {
	set := 0
	for _, b := range []bool{p.Agent != nil, p.ToolServer != nil, p.ServiceAccount != nil} {
		if b {
			set++
		}
	}
	if set > 1 {
		return apperr.Invalid("profile", "holds the fields of one kind only")
	}
	switch kind {
	case KindAgent:
		if p.ToolServer != nil || p.ServiceAccount != nil {
			return apperr.Invalid("profile", "an agent takes profile.agent")
		}
		if p.Agent == nil {
			p.Agent = &AgentProfile{}
		}
		a := p.Agent
		if a.RiskLevel == "" {
			a.RiskLevel = "medium"
		}
		if !slices.Contains([]string{"low", "medium", "high", "critical"}, a.RiskLevel) {
			return apperr.Invalid("profile.agent.risk_level", "must be low, medium, high or critical")
		}
		if len(a.Skills) > 100 {
			return apperr.Invalid("profile.agent.skills", "at most 100 skills")
		}
		if !slices.Contains([]string{"", "1.0", "0.3"}, a.A2AVersion) {
			return apperr.Invalid("profile.agent.a2a_version", "must be 1.0 or 0.3")
		}
		for _, f := range []string{a.AgentType, a.ModelProvider, a.ModelName} {
			if len(f) > 200 {
				return apperr.Invalid("profile.agent", "fields are at most 200 characters")
			}
		}
		if a.A2AEndpoint != "" {
			if err := httpURL("profile.agent.a2a_endpoint", a.A2AEndpoint); err != nil {
				return err
			}
		}
	case KindToolServer:
		if p.Agent != nil || p.ServiceAccount != nil || p.ToolServer == nil {
			return apperr.Invalid("profile", "a tool server takes profile.tool_server")
		}
		t := p.ToolServer
		switch t.Transport {
		case "streamable_http", "sse":
			if t.Command != "" || len(t.Args) > 0 {
				return apperr.Invalid("profile.tool_server.command", "only stdio tool servers run a command")
			}
			if err := httpURL("profile.tool_server.url", t.URL); err != nil {
				return err
			}
		case "stdio":
			if t.URL != "" {
				return apperr.Invalid("profile.tool_server.url", "stdio tool servers have no URL")
			}
			if !filepath.IsAbs(t.Command) || !slices.Contains(s.StdioAllowlist, t.Command) {
				return apperr.Invalid("profile.tool_server.command", "must be a command on the operator's allowlist (mcp.stdio_allowlist)")
			}
			if len(t.Args) > 32 {
				return apperr.Invalid("profile.tool_server.args", "at most 32 arguments")
			}
			for _, a := range t.Args {
				if len(a) > 1000 || strings.ContainsRune(a, 0) {
					return apperr.Invalid("profile.tool_server.args", "each argument is at most 1000 characters, without NUL")
				}
			}
		default:
			return apperr.Invalid("profile.tool_server.transport", "must be streamable_http, sse or stdio")
		}
		if len(t.CredentialRef) > 200 {
			return apperr.Invalid("profile.tool_server.credential_ref", "must be at most 200 characters")
		}
	case KindServiceAccount:
		if p.Agent != nil || p.ToolServer != nil || p.ServiceAccount == nil || strings.TrimSpace(p.ServiceAccount.Purpose) == "" {
			return apperr.Invalid("profile.service_account.purpose", "a service account states its purpose")
		}
		if len(p.ServiceAccount.Purpose) > 1000 {
			return apperr.Invalid("profile.service_account.purpose", "must be at most 1000 characters")
		}
		if e := p.ServiceAccount.ExpiresAt; e != nil && !e.After(s.now()) {
			return apperr.Invalid("profile.service_account.expires_at", "must be in the future")
		}
	default:
		return apperr.Invalid("kind", "must be agent, tool_server or service_account")
	}
	return nil
}

func httpURL(field, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || len(raw) > 2000 {
		return apperr.Invalid(field, "must be an absolute http(s) URL without credentials")
	}
	return nil
}

// checkOwner requires an active user of the tenant.
func (s *Service) checkOwner(ctx context.Context, tx *store.Tx, field string, id uuid.UUID) error {
	if s.Users == nil {
		return errors.New("nhi: no user directory to check owners with")
	}
	status, err := s.Users.StatusTx(ctx, tx, id)
	if apperr.KindOf(err) == apperr.KindNotFound {
		return apperr.Invalid(field, "no such user in this tenant")
	}
	if err != nil {
		return err
	}
	if status != "active" {
		return apperr.Invalid(field, "the owner must be an active user")
	}
	return nil
}

// auditTx records a change of n in the transaction that makes it.
func (s *Service) auditTx(ctx context.Context, tx *store.Tx, action string, n *NHI, details any) error {
	return audit.RecordChangeTx(ctx, tx, s.Audit, action, "nhi", n.ID.String(), details)
}

func (s *Service) write(ctx context.Context, tx *store.Tx, n *NHI) error {
	if err := updateNHI(ctx, tx, n); err != nil {
		return err
	}
	return s.publish(ctx, tx, n, n.Version)
}

// publish records an NHI's change event in tx (this replica's caches hear
// it at the commit: events.Bus).
func (s *Service) publish(ctx context.Context, tx *store.Tx, n *NHI, version int64) error {
	c := events.Change{TenantID: tx.TenantID(), Kind: EventKind, ID: n.ID.String(), Version: version}
	return events.Publish(ctx, tx, c, map[string]string{"status": n.Status, "kind": n.Kind})
}
