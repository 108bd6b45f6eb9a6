package nhi

import (
	"context"
	"fmt"
	"time"

	"github.com/xavyo/xavyo/internal/store"
)

// risk scores an NHI from 0 to 100: privilege (what it is and may do),
// credential age, inactivity and a missing owner.
func (s *Service) risk(n *NHI, now, oldestSecret time.Time, ownerActive bool, pol credPolicy) (int, []RiskFactor) {
	var f []RiskFactor
	add := func(factor string, points int, detail string) {
		if points > 0 {
			f = append(f, RiskFactor{Factor: factor, Points: points, Detail: detail})
		}
	}
	switch {
	case n.Kind == KindAgent && n.Profile.Agent != nil:
		add("privilege", map[string]int{"low": 5, "medium": 15, "high": 30, "critical": 40}[n.Profile.Agent.RiskLevel],
			"agent declared "+n.Profile.Agent.RiskLevel+" risk")
	case n.Kind == KindToolServer && n.Profile.ToolServer != nil && n.Profile.ToolServer.Transport == "stdio":
		add("privilege", 15, "runs a local command")
	case n.Kind == KindServiceAccount && n.Profile.ServiceAccount != nil && n.Profile.ServiceAccount.ExpiresAt == nil:
		add("privilege", 10, "service account without an expiry")
	}
	if age := now.Sub(oldestSecret); age > pol.maxAge {
		add("credential_age", 25, fmt.Sprintf("a live secret is %d days old, past the %d-day policy", int(age.Hours()/24), int(pol.maxAge.Hours()/24)))
	} else if age > pol.maxAge/2 {
		add("credential_age", 10, fmt.Sprintf("a live secret is %d days old", int(age.Hours()/24)))
	}
	last := n.CreatedAt
	if n.LastUsedAt != nil {
		last = *n.LastUsedAt
	}
	if idle := now.Sub(last); idle > 90*24*time.Hour {
		add("inactivity", 20, fmt.Sprintf("unused for %d days", int(idle.Hours()/24)))
	} else if idle > 30*24*time.Hour {
		add("inactivity", 10, fmt.Sprintf("unused for %d days", int(idle.Hours()/24)))
	}
	if n.OwnerID == nil || !ownerActive {
		add("owner", 30, "no active owner")
	} else if n.BackupOwnerID == nil {
		add("owner", 5, "no backup owner")
	}
	score := 0
	for _, x := range f {
		score += x.Points
	}
	if f == nil {
		f = []RiskFactor{}
	}
	return min(score, 100), f
}

// rescore recomputes n's risk inside tx.
func (s *Service) rescore(ctx context.Context, tx *store.Tx, n *NHI, pol credPolicy) error {
	now := s.now()
	oldest := now
	// ORDER BY … LIMIT 1 rather than MIN(): SQLite returns aggregates of
	// timestamps as text.
	var t time.Time
	err := tx.QueryRow(ctx, `SELECT s.created_at FROM client_secrets s JOIN oauth_clients c ON c.tenant_id = s.tenant_id AND c.id = s.client
		WHERE s.tenant_id = $1 AND c.nhi_id = $2 AND s.revoked_at IS NULL AND (s.expires_at IS NULL OR s.expires_at > $3)
		ORDER BY s.created_at LIMIT 1`, tx.TenantID(), n.ID, now).Scan(&t)
	if err != nil && !store.NoRows(err) {
		return err
	}
	if err == nil {
		oldest = t
	}
	active := false
	if n.OwnerID != nil {
		active = checkOwner(ctx, tx, "owner_id", *n.OwnerID) == nil
	}
	n.RiskScore, n.RiskFactors = s.risk(n, now, oldest, active, pol)
	return nil
}

// Report lists NHIs needing attention, each with a fresh risk score.
type Report struct {
	Kind  string `json:"kind" doc:"inactive or orphaned"`
	Items []*NHI `json:"items"`
}

// Inactive lists live NHIs unused (or never used) for at least days.
func (s *Service) Inactive(ctx context.Context, days int) (*Report, error) {
	cutoff := s.now().Add(-time.Duration(days) * 24 * time.Hour)
	return s.report(ctx, "inactive", `n.status <> 'archived' AND COALESCE(n.last_used_at, n.created_at) < $2`, cutoff)
}

// Orphaned lists live NHIs whose owner is missing or not an active user.
func (s *Service) Orphaned(ctx context.Context) (*Report, error) {
	return s.report(ctx, "orphaned", `n.status <> 'archived' AND $2 AND NOT EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = n.tenant_id
		AND u.id = n.owner_id AND u.status = 'active')`, true)
}

func (s *Service) report(ctx context.Context, kind, where string, arg any) (*Report, error) {
	pol, err := s.credentialPolicy(ctx)
	if err != nil {
		return nil, err
	}
	out := &Report{Kind: kind, Items: []*NHI{}}
	err = s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+cols+from+`WHERE n.tenant_id = $1 AND `+where+` ORDER BY n.id LIMIT 1000`, tx.TenantID(), arg)
		if err != nil {
			return err
		}
		for rows.Next() {
			n, err := scan(rows, tx.TenantID())
			if err != nil {
				rows.Close()
				return err
			}
			out.Items = append(out.Items, n)
		}
		rows.Close()
		for _, n := range out.Items {
			if err := s.rescore(ctx, tx, n, pol); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
