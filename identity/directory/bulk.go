package directory

import (
	"context"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
)

// MaxBulk bounds the rows of one bulk request.
const MaxBulk = 500

// BulkUpdate is one row of a bulk update.
type BulkUpdate struct {
	ID uuid.UUID `json:"id"`
	// Version, when not 0, must be the user's current version.
	Version int64 `json:"version,omitempty"`
	UpdateUserInput
}

// BulkInput creates and updates users in one request; each row stands
// alone (its own transaction) and gets its own result.
type BulkInput struct {
	Create []CreateUserInput `json:"create,omitempty"`
	Update []BulkUpdate      `json:"update,omitempty"`
}

// BulkResult is the outcome of one row.
type BulkResult struct {
	Op     string     `json:"op" doc:"create or update"`
	Index  int        `json:"index" doc:"position of the row in its list"`
	Status int        `json:"status" doc:"HTTP status the row would have had alone"`
	ID     *uuid.UUID `json:"id,omitempty"`
	Error  string     `json:"error,omitempty"`
	Code   string     `json:"code,omitempty"`
}

// BulkOutput lists every row's result, creates first.
type BulkOutput struct {
	Results   []BulkResult `json:"results"`
	Succeeded int          `json:"succeeded"`
	Failed    int          `json:"failed"`
}

// Bulk runs the rows in order. statusOf maps errors to statuses.
func (s *Service) Bulk(ctx context.Context, in BulkInput, statusOf func(error) int) (*BulkOutput, error) {
	if n := len(in.Create) + len(in.Update); n == 0 || n > MaxBulk {
		return nil, apperr.Invalid("body", "a bulk request carries 1 to 500 rows")
	}
	out := &BulkOutput{Results: []BulkResult{}}
	record := func(op string, i int, id *uuid.UUID, okStatus int, err error) {
		r := BulkResult{Op: op, Index: i, Status: okStatus, ID: id}
		if err != nil {
			r.Status, r.Error, r.Code, r.ID = statusOf(err), apperr.PublicMessage(err), apperr.KindOf(err).String(), id
			out.Failed++
		} else {
			out.Succeeded++
		}
		out.Results = append(out.Results, r)
	}
	for i, c := range in.Create {
		u, err := s.CreateUser(ctx, c)
		var id *uuid.UUID
		if u != nil {
			id = &u.ID
		}
		record("create", i, id, 201, err)
	}
	for i, u := range in.Update {
		id := u.ID
		var err error
		if id == uuid.Nil {
			err = apperr.Invalid("id", "is required")
		} else {
			_, err = s.UpdateUser(ctx, id, u.UpdateUserInput, u.Version)
		}
		record("update", i, &id, 200, err)
	}
	return out, nil
}
