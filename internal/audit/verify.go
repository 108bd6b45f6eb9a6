package audit

import (
	"bytes"
	"context"
	"fmt"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/store"
)

// Problem names the first row where a chain stops verifying.
type Problem struct {
	Seq    int64
	ID     uuid.UUID
	Reason string
}

// Report is the result of verifying one chain.
type Report struct {
	TenantID uuid.UUID
	Rows     int64
	// HeadSeq is the sequence the chain head says the chain reaches.
	HeadSeq int64
	// First is nil when the chain verifies.
	First *Problem
}

// OK reports whether the chain verified.
func (r Report) OK() bool { return r.First == nil }

func isNoRows(err error) bool {
	return store.NoRows(err)
}

// Verify walks tenant's chain in order and reports the first row that
// was altered (hash mismatch), removed (sequence gap, broken link, or a
// head beyond the last row), inserted or reordered (broken link).
func Verify(ctx context.Context, db *store.DB, tenant uuid.UUID) (Report, error) {
	rep := Report{TenantID: tenant}
	read := db.SystemRead
	if tenant != Platform {
		ctx = store.WithTenant(ctx, tenant)
		read = db.InTenantRead
	}
	err := read(ctx, func(tx *store.Tx) error {
		var headHash []byte
		err := tx.QueryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE tenant_id = $1`, tenant).Scan(&rep.HeadSeq, &headHash)
		if err != nil && !isNoRows(err) {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT `+recordCols+` FROM audit_log WHERE tenant_id = $1 ORDER BY seq`, tenant)
		if err != nil {
			return err
		}
		defer rows.Close()
		prev := []byte{}
		var want int64 = 1
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				return err
			}
			rep.Rows++
			if rep.First != nil {
				continue
			}
			switch {
			case r.Seq != want:
				rep.First = &Problem{Seq: r.Seq, ID: r.ID, Reason: fmt.Sprintf("sequence gap: expected %d (a row was deleted)", want)}
			case !bytes.Equal(r.PrevHash, prev):
				rep.First = &Problem{Seq: r.Seq, ID: r.ID, Reason: "link broken: prev_hash does not match the preceding row (rows deleted, inserted or reordered)"}
			case !bytes.Equal(computeHash(r), r.Hash):
				rep.First = &Problem{Seq: r.Seq, ID: r.ID, Reason: "hash mismatch: the row was altered"}
			}
			prev = r.Hash
			want = r.Seq + 1
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if rep.First == nil && (rep.HeadSeq != want-1 || (rep.HeadSeq > 0 && !bytes.Equal(headHash, prev))) {
			rep.First = &Problem{Seq: want, Reason: fmt.Sprintf("chain head is at %d but rows end at %d (rows at the tail were deleted)", rep.HeadSeq, want-1)}
		}
		return nil
	})
	return rep, err
}

// recordCols are the columns scanRecord reads, in order.
const recordCols = `tenant_id, seq, id, at, actor_kind, actor_id, action, target_kind, target_id, outcome, request_id, details, prev_hash, hash`

// scanRecord reads one audit_log row selected with recordCols.
func scanRecord(rows interface{ Scan(...any) error }) (*Record, error) {
	var r Record
	var details []byte
	if err := rows.Scan(&r.TenantID, &r.Seq, &r.ID, &r.At, &r.ActorKind, &r.ActorID, &r.Action, &r.TargetKind, &r.TargetID,
		&r.Outcome, &r.RequestID, &details, &r.PrevHash, &r.Hash); err != nil {
		return nil, err
	}
	r.Details = details
	return &r, nil
}
