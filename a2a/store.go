package a2a

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/gateway"
	"github.com/xavyo/xavyo/internal/store"
)

// The A2A stores: imported agent cards (a2a_cards), push-notification
// relays (a2a_push_relays) and who made which task (a2a_tasks).

// pinnedCards reads the cards pinned for the tenant's agents.
func (h *Handlers) pinnedCards(ctx context.Context) (map[uuid.UUID][]byte, error) {
	out := map[uuid.UUID][]byte{}
	err := h.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		rows, err := tx.Query(ctx, `SELECT nhi_id, pinned_card FROM a2a_cards WHERE tenant_id = $1 AND pinned_card <> ''`, tx.TenantID())
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id uuid.UUID
			var card []byte
			if err := rows.Scan(&id, &card); err != nil {
				return err
			}
			out[id] = card
		}
		return rows.Err()
	})
	return out, err
}

// lockCard locks an agent's imported card and returns its pinned hash
// (store.NoRows: none imported yet).
func lockCard(ctx context.Context, tx *store.Tx, agent uuid.UUID) (string, error) {
	var pinned string
	err := tx.QueryRow(ctx, `SELECT pinned_hash FROM a2a_cards WHERE tenant_id = $1 AND nhi_id = $2 FOR UPDATE`, tx.TenantID(), agent).Scan(&pinned)
	return pinned, err
}

// insertCard stores a first import, pinned at once.
func insertCard(ctx context.Context, tx *store.Tx, agent uuid.UUID, canon []byte, hash string, signed bool, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO a2a_cards (tenant_id, nhi_id, card, hash, signed, pinned_card, pinned_hash, fetched_at)
		VALUES ($1, $2, $3, $4, $5, $3, $4, $6)`, tx.TenantID(), agent, string(canon), hash, signed, now)
	return err
}

// updateCard stores the latest import beside the pinned card.
func updateCard(ctx context.Context, tx *store.Tx, agent uuid.UUID, canon []byte, hash string, signed bool, now time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE a2a_cards SET card = $1, hash = $2, signed = $3, fetched_at = $4 WHERE tenant_id = $5 AND nhi_id = $6`,
		string(canon), hash, signed, now, tx.TenantID(), agent)
	return err
}

// cardOf reads an agent's card status into st and returns the latest and
// pinned cards (store.NoRows: none imported).
func cardOf(ctx context.Context, tx *store.Tx, agent uuid.UUID, st *CardStatus) (string, string, error) {
	var latest, pinned string
	err := tx.QueryRow(ctx, `SELECT card, hash, signed, pinned_card, pinned_hash, fetched_at FROM a2a_cards WHERE tenant_id = $1 AND nhi_id = $2`,
		tx.TenantID(), agent).Scan(&latest, &st.LatestHash, &st.Signed, &pinned, &st.PinnedHash, &st.FetchedAt)
	return latest, pinned, err
}

// pinLatestCard pins an agent's latest card; false when it was pinned
// already.
func pinLatestCard(ctx context.Context, tx *store.Tx, agent uuid.UUID) (bool, error) {
	res, err := tx.Exec(ctx, `UPDATE a2a_cards SET pinned_card = card, pinned_hash = hash WHERE tenant_id = $1 AND nhi_id = $2 AND pinned_hash <> hash`,
		tx.TenantID(), agent)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// relay is a caller's webhook that xavyo stands in for.
type relay struct {
	id          uuid.UUID
	url, token  string
	secretHash  string
	sealedToken []byte
}

func insertRelay(ctx context.Context, tx *store.Tx, r relay, agent string, p *gateway.Caller) error {
	_, err := tx.Exec(ctx, `INSERT INTO a2a_push_relays (tenant_id, id, agent, caller_kind, caller_id, url, caller_token, secret_sha256, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, tx.TenantID(), r.id, agent, string(p.Kind), p.SubjectID, r.url, r.sealedToken, r.secretHash,
		store.Now())
	return err
}

// relayOf reads a relay: its agent, caller and target with the caller's
// sealed token (store.NoRows: none).
func relayOf(ctx context.Context, tx *store.Tx, id uuid.UUID) (agent, kind, caller, target string, sealed []byte, err error) {
	err = tx.QueryRow(ctx, `SELECT agent, caller_kind, caller_id, url, caller_token FROM a2a_push_relays WHERE tenant_id = $1 AND id = $2`,
		tx.TenantID(), id).Scan(&agent, &kind, &caller, &target, &sealed)
	return agent, kind, caller, target, sealed, err
}

func relaySecretHash(ctx context.Context, tx *store.Tx, id uuid.UUID) (string, error) {
	var hash string
	err := tx.QueryRow(ctx, `SELECT secret_sha256 FROM a2a_push_relays WHERE tenant_id = $1 AND id = $2`, tx.TenantID(), id).Scan(&hash)
	return hash, err
}

// tasksOwners reads who made each of an agent's tasks ids that xavyo saw
// made: caller kind and ID joined by a slash.
func tasksOwners(ctx context.Context, tx *store.Tx, agent string, ids []string) (map[string]string, error) {
	// One query for a list's tasks: task_id IN ($3, $4, …).
	in := make([]string, len(ids))
	args := []any{tx.TenantID(), agent}
	for i, id := range ids {
		in[i] = "$" + strconv.Itoa(i+3)
		args = append(args, id)
	}
	rows, err := tx.Query(ctx, `SELECT task_id, caller_kind, caller_id FROM a2a_tasks WHERE tenant_id = $1 AND agent = $2 AND task_id IN (`+
		strings.Join(in, ", ")+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	owners := map[string]string{}
	for rows.Next() {
		var id, kind, caller string
		if err := rows.Scan(&id, &kind, &caller); err != nil {
			return nil, err
		}
		owners[id] = kind + "/" + caller
	}
	return owners, rows.Err()
}

// bindTask records the caller as the maker of a task, unless one is
// recorded.
func bindTask(ctx context.Context, tx *store.Tx, agent, id string, p *gateway.Caller) error {
	_, err := tx.Exec(ctx, `INSERT INTO a2a_tasks (tenant_id, agent, task_id, caller_kind, caller_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (tenant_id, agent, task_id) DO NOTHING`, tx.TenantID(), agent, id, string(p.Kind), p.SubjectID, store.Now())
	return err
}
