package nhi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

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
	t, err := oldestLiveSecret(ctx, tx, n.ID, now)
	if err != nil && !store.NoRows(err) {
		return err
	}
	if err == nil {
		oldest = t
	}
	active := false
	if n.OwnerID != nil {
		active = s.checkOwner(ctx, tx, "owner_id", *n.OwnerID) == nil
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
	return s.report(ctx, "inactive", func(tx *store.Tx) ([]*NHI, error) { return unusedSince(ctx, tx, cutoff, reportSize) })
}

// Orphaned lists live NHIs whose owner is missing or not an active user.
func (s *Service) Orphaned(ctx context.Context) (*Report, error) {
	return s.report(ctx, "orphaned", func(tx *store.Tx) ([]*NHI, error) {
		var out []*NHI
		after := uuid.Nil
		for len(out) < reportSize {
			page, err := liveNHIs(ctx, tx, after, 500)
			if err != nil || len(page) == 0 {
				return out, err
			}
			var owners []uuid.UUID
			for _, n := range page {
				if n.OwnerID != nil {
					owners = append(owners, *n.OwnerID)
				}
			}
			active, err := s.Users.ActiveAmongTx(ctx, tx, owners)
			if err != nil {
				return nil, err
			}
			for _, n := range page {
				if (n.OwnerID == nil || !active[*n.OwnerID]) && len(out) < reportSize {
					out = append(out, n)
				}
			}
			after = page[len(page)-1].ID
		}
		return out, nil
	})
}

// reportSize bounds a report.
const reportSize = 1000

func (s *Service) report(ctx context.Context, kind string, find func(*store.Tx) ([]*NHI, error)) (*Report, error) {
	if s.Users == nil {
		return nil, errors.New("nhi: no user directory to check owners with")
	}
	pol, err := s.credentialPolicy(ctx)
	if err != nil {
		return nil, err
	}
	out := &Report{Kind: kind, Items: []*NHI{}}
	err = s.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		items, err := find(tx)
		if err != nil {
			return err
		}
		out.Items = append(out.Items, items...)
		for _, n := range out.Items {
			if err := s.rescore(ctx, tx, n, pol); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}
