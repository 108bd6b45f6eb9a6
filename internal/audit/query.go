package audit

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/store"
)

// Filter selects audit records of the tenant in the context, newest first.
type Filter struct {
	// Action matches exactly, or as a prefix when it ends with "*".
	Action    string
	ActorID   string
	TargetID  string
	Outcome   string
	RequestID string
	Since     *time.Time
	Until     *time.Time
	// Before is a sequence number: records older than it (the cursor).
	Before int64
	Limit  int
}

// Query returns the records matching f and whether more follow.
func Query(ctx context.Context, db *store.DB, f Filter) ([]Record, bool, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 100
	}
	if f.Outcome != "" && f.Outcome != OutcomeSuccess && f.Outcome != OutcomeDenied && f.Outcome != OutcomeFailure {
		return nil, false, apperr.Invalid("outcome", "must be success, denied or failure")
	}
	q := strings.Builder{}
	q.WriteString(`SELECT ` + recordCols + ` FROM audit_log WHERE tenant_id = $1`)
	var args []any
	arg := func(cond string, v any) {
		args = append(args, v)
		q.WriteString(" AND " + strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args)+1)))
	}
	if a, ok := strings.CutSuffix(f.Action, "*"); ok {
		arg("substr(action, 1, "+strconv.Itoa(len(a))+") = ?", a)
	} else if f.Action != "" {
		arg("action = ?", f.Action)
	}
	if f.ActorID != "" {
		arg("actor_id = ?", f.ActorID)
	}
	if f.TargetID != "" {
		arg("target_id = ?", f.TargetID)
	}
	if f.Outcome != "" {
		arg("outcome = ?", f.Outcome)
	}
	if f.RequestID != "" {
		arg("request_id = ?", f.RequestID)
	}
	if f.Since != nil {
		arg("at >= ?", f.Since.UTC())
	}
	if f.Until != nil {
		arg("at < ?", f.Until.UTC())
	}
	if f.Before > 0 {
		arg("seq < ?", f.Before)
	}
	q.WriteString(" ORDER BY seq DESC LIMIT " + strconv.Itoa(f.Limit+1))
	var out []Record
	err := db.InTenantRead(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, q.String(), append([]any{tx.TenantID()}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				return err
			}
			out = append(out, *r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, false, err
	}
	more := len(out) > f.Limit
	if more {
		out = out[:f.Limit]
	}
	return out, more, nil
}

// Stat counts the records of one action and outcome.
type Stat struct {
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Count   int64  `json:"count"`
}

// MaxStatsWindow bounds the time a statistics query may span.
const MaxStatsWindow = 31 * 24 * time.Hour

// Stats counts the records of the tenant in the context written in
// [since, until) by action and outcome; action, when given, matches
// exactly or as a prefix when it ends with "*". These are a tenant's own
// figures (the platform's metrics are the operators').
func Stats(ctx context.Context, db *store.DB, action string, since, until time.Time) ([]Stat, error) {
	if !until.After(since) || until.Sub(since) > MaxStatsWindow {
		return nil, apperr.Invalid("since", "the window must be positive and at most 31 days")
	}
	q := `SELECT action, outcome, COUNT(*) FROM audit_log WHERE tenant_id = $1 AND at >= $2 AND at < $3`
	args := []any{since.UTC(), until.UTC()}
	if a, ok := strings.CutSuffix(action, "*"); ok {
		q += ` AND substr(action, 1, ` + strconv.Itoa(len(a)) + `) = $4`
		args = append(args, a)
	} else if action != "" {
		q += ` AND action = $4`
		args = append(args, action)
	}
	q += ` GROUP BY action, outcome ORDER BY action, outcome`
	out := []Stat{}
	err := db.InTenantRead(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, q, append([]any{tx.TenantID()}, args...)...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var s Stat
			if err := rows.Scan(&s.Action, &s.Outcome, &s.Count); err != nil {
				return err
			}
			out = append(out, s)
		}
		return rows.Err()
	})
	return out, err
}
