package mcp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// EventSession is the change-event kind of a terminated session.
const EventSession = "mcp.session"

// session is a client's MCP session: bound to the principal that opened
// it and to one endpoint. It lives in the database, so any replica can
// continue it; in-flight requests (for cancellation) are replica-local.
type session struct {
	tenant      uuid.UUID
	hash        string
	subjectKind string
	subjectID   string
	server      string
	version     string
	expires     time.Time
	caps        clientCaps
	capsJSON    json.RawMessage // caps, as sent on to a tool server of the stateless era

	mu       sync.Mutex
	logLevel string                        // "" until the client sets one
	inflight map[string]context.CancelFunc // client request id (raw JSON) → cancel
}

// clientCaps are the capabilities a client declared at initialize that
// decide which of a tool server's requests the gateway relays to it.
type clientCaps struct {
	Sampling    json.RawMessage `json:"sampling,omitempty"`
	Elicitation json.RawMessage `json:"elicitation,omitempty"`
	Roots       json.RawMessage `json:"roots,omitempty"`
}

// any reports whether the client declared any capability a server
// request needs.
func (c clientCaps) any() bool {
	return len(c.Sampling) > 0 || len(c.Elicitation) > 0 || len(c.Roots) > 0
}

// allows reports whether the client declared the capability a server
// request needs.
func (c clientCaps) allows(method string) bool {
	switch method {
	case "sampling/createMessage":
		return len(c.Sampling) > 0
	case "elicitation/create":
		return len(c.Elicitation) > 0
	case "roots/list":
		return len(c.Roots) > 0
	}
	return false
}

// wantsLogs reports whether the client set a log level.
func (s *session) wantsLogs() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logLevel != ""
}

// logLevels in increasing severity (RFC 5424, as MCP names them).
var logLevels = []string{"debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"}

// wantsLog reports whether a log message of level goes to the client: it
// set a level, and the message is at least that severe.
func (s *session) wantsLog(level string) bool {
	s.mu.Lock()
	min := s.logLevel
	s.mu.Unlock()
	return min != "" && slices.Index(logLevels, level) >= slices.Index(logLevels, min)
}

func (s *session) track(id string, cancel context.CancelFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == nil {
		s.inflight = map[string]context.CancelFunc{}
	}
	s.inflight[id] = cancel
}

func (s *session) untrack(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.inflight, id)
}

// cancel cancels an in-flight request of the session, if here.
func (s *session) cancel(id string) {
	s.mu.Lock()
	c := s.inflight[id]
	s.mu.Unlock()
	if c != nil {
		c()
	}
}

// sessions caches sessions read from the database.
type sessions struct {
	db    *store.DB
	max   int // live sessions per principal
	mu    sync.Mutex
	byKey map[string]*session // tenant/hash → session
}

func sessionHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

func (ss *sessions) key(tenant uuid.UUID, hash string) string { return tenant.String() + "/" + hash }

// create opens a session and returns its id (256-bit random).
func (ss *sessions) create(ctx context.Context, s *session, clientInfo []byte) (string, error) {
	caps, _ := json.Marshal(s.caps)
	s.capsJSON = caps
	var b [32]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	s.hash = sessionHash(id)
	if len(clientInfo) == 0 || len(clientInfo) > 4096 {
		clientInfo = []byte("{}")
	}
	now := store.Now()
	err := ss.db.InTenantTx(store.WithTenant(ctx, s.tenant), func(tx *store.Tx) error {
		// A principal's live sessions are bounded: the oldest beyond the
		// limit end, as a sign-in beyond its limit ends the oldest.
		if err := ss.endOldest(ctx, tx, s, now); err != nil {
			return err
		}
		return insertSession(ctx, tx, s, clientInfo, caps, now)
	})
	if err != nil {
		return "", err
	}
	ss.put(s)
	return id, nil
}

// endOldest ends the principal's oldest live sessions so that s fits
// within the limit.
func (ss *sessions) endOldest(ctx context.Context, tx *store.Tx, s *session, now time.Time) error {
	if ss.max <= 0 {
		return nil
	}
	live, err := liveSessions(ctx, tx, s.subjectKind, s.subjectID, now)
	if err != nil {
		return err
	}
	for _, h := range live[min(len(live), ss.max-1):] {
		if err := endSession(ctx, tx, h, now); err != nil {
			return err
		}
		key := ss.key(s.tenant, h)
		tx.AfterCommit(func() { ss.drop(key) })
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventSession, ID: key}, nil); err != nil {
			return err
		}
	}
	return nil
}

func (ss *sessions) put(s *session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.byKey == nil || len(ss.byKey) > 200_000 {
		ss.byKey = map[string]*session{}
	}
	ss.byKey[ss.key(s.tenant, s.hash)] = s
}

// errNoSession is answered with 404: the client must initialize anew.
var errNoSession = apperr.New(apperr.KindNotFound, "session not found or ended; initialize a new one")

// get returns a live session, reading it from the database on a miss
// (another replica may have opened it).
func (ss *sessions) get(ctx context.Context, tenant uuid.UUID, id string, now time.Time) (*session, error) {
	h := sessionHash(id)
	ss.mu.Lock()
	s := ss.byKey[ss.key(tenant, h)]
	ss.mu.Unlock()
	if s == nil {
		s = &session{tenant: tenant, hash: h}
		var terminated *time.Time
		var caps string
		err := ss.db.InTenantRead(store.WithTenant(ctx, tenant), func(tx *store.Tx) error {
			var err error
			caps, terminated, err = sessionRow(ctx, tx, h, s)
			return err
		})
		_ = json.Unmarshal([]byte(caps), &s.caps)
		s.capsJSON = json.RawMessage(caps)
		if store.NoRows(err) || (err == nil && terminated != nil) {
			return nil, errNoSession
		}
		if err != nil {
			return nil, err
		}
		ss.put(s)
	}
	if !now.Before(s.expires) {
		return nil, errNoSession
	}
	return s, nil
}

// terminate ends a session on every replica.
func (ss *sessions) terminate(ctx context.Context, s *session) error {
	return ss.db.InTenantTx(store.WithTenant(ctx, s.tenant), func(tx *store.Tx) error {
		if err := endSession(ctx, tx, s.hash, store.Now()); err != nil {
			return err
		}
		tx.AfterCommit(func() { ss.drop(ss.key(s.tenant, s.hash)) })
		return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventSession, ID: ss.key(s.tenant, s.hash)}, nil)
	})
}

// setLogLevel records the log level the client asked for, on every
// replica.
func (ss *sessions) setLogLevel(ctx context.Context, s *session, level string) error {
	err := ss.db.InTenantTx(store.WithTenant(ctx, s.tenant), func(tx *store.Tx) error {
		if err := setSessionLogLevel(ctx, tx, s.hash, level); err != nil {
			return err
		}
		// Other replicas re-read the session.
		return events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventSession, ID: ss.key(s.tenant, s.hash)}, nil)
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.logLevel = level
	s.mu.Unlock()
	return nil
}

func (ss *sessions) drop(key string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byKey, key)
}

func (ss *sessions) dropAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.byKey = nil
}

// RunPurge deletes ended sessions (expired, or terminated an hour ago)
// every interval until ctx ends.
func (g *Gateway) RunPurge(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := g.PurgeSessions(ctx, store.Now()); err != nil && ctx.Err() == nil {
			g.cfg.Logger.Warn("mcp session purge failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// PurgeSessions deletes the sessions of every tenant that ended by now
// (expired, or terminated an hour before) and returns how many.
func (g *Gateway) PurgeSessions(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	now = now.UTC()
	err := g.cfg.DB.SystemTx(ctx, func(tx *store.Tx) error {
		var err error
		n, err = purgeSessions(ctx, tx, now, now.Add(-time.Hour))
		return err
	})
	return n, err
}

// stateless reports a request of the stateless era, served through the
// same call path as a session's (an ephemeral session, never stored).
func (s *session) stateless() bool { return slices.Contains(modernVersions, s.version) }
