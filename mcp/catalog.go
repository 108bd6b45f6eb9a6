package mcp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/xavyo/xavyo/governance"
	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/internal/apperr"
	"github.com/xavyo/xavyo/internal/audit"
	"github.com/xavyo/xavyo/internal/events"
	"github.com/xavyo/xavyo/internal/store"
)

// Limits of one catalog sync.
const (
	maxPages = 100
	maxTools = 5000
)

// toolNameRE is the MCP tool-name charset (2025-11-25: 1–128 characters of
// A–Z, a–z, 0–9, _, - and .). The gateway also keeps "__" out of names it
// prefixes, as the aggregate endpoint splits "<server>__<tool>" there.
var toolNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Tool is a catalog entry as the admin API shows it.
type Tool struct {
	ServerID      uuid.UUID       `json:"server_id"`
	Name          string          `json:"name"`
	Definition    json.RawMessage `json:"definition" doc:"exactly as the upstream sent it"`
	Hash          string          `json:"hash" doc:"SHA-256 of the canonical definition"`
	EntitlementID uuid.UUID       `json:"entitlement_id"`
	UpdatedAt     time.Time       `json:"updated_at"`
}

// SyncReport tells what a catalog sync found.
type SyncReport struct {
	ServerID uuid.UUID               `json:"server_id"`
	Tools    []governance.SyncResult `json:"tools"`
	Removed  []string                `json:"removed"`
	Skipped  []map[string]string     `json:"skipped" doc:"tools the gateway cannot serve, with why"`
	SyncedAt time.Time               `json:"synced_at"`
}

// toolEntry is one tool of the in-memory catalog.
type toolEntry struct {
	server   *serverEntry
	name     string
	def      json.RawMessage // as the upstream sent it
	prefixed json.RawMessage // the same with name "<server>__<tool>"
	ent      uuid.UUID
	hash     string // of def: a live definition that hashes otherwise is not this one

	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
}

type serverEntry struct {
	id     uuid.UUID
	slug   string
	active bool
	tools  []*toolEntry // by name
	byName map[string]*toolEntry
}

// catalog is a tenant's tool catalog at one moment, immutable.
type catalog struct {
	bySlug     map[string]*serverEntry
	byID       map[uuid.UUID]*serverEntry
	all        []*toolEntry // by server slug, then name
	byPrefixed map[string]*toolEntry
}

type catalogSlot struct {
	build sync.Mutex
	cat   atomic.Pointer[catalog]
	gen   atomic.Int64
	built atomic.Int64
}

// catalogs keeps one catalog per tenant, rebuilt on first use after a
// change event invalidates it.
type catalogs struct {
	db    *store.DB
	nhis  NHIs
	mu    sync.Mutex
	slots map[uuid.UUID]*catalogSlot
}

func (c *catalogs) slot(tenant uuid.UUID) *catalogSlot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.slots == nil {
		c.slots = map[uuid.UUID]*catalogSlot{}
	}
	s := c.slots[tenant]
	if s == nil {
		s = &catalogSlot{}
		s.gen.Store(1)
		c.slots[tenant] = s
	}
	return s
}

func (c *catalogs) invalidate(tenant uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.slots {
		if tenant == uuid.Nil || id == tenant {
			s.gen.Add(1)
		}
	}
}

func (c *catalogs) get(ctx context.Context, tenant uuid.UUID) (*catalog, error) {
	sl := c.slot(tenant)
	if cat := sl.cat.Load(); cat != nil && sl.built.Load() == sl.gen.Load() {
		return cat, nil
	}
	sl.build.Lock()
	defer sl.build.Unlock()
	gen := sl.gen.Load()
	if cat := sl.cat.Load(); cat != nil && sl.built.Load() == gen {
		return cat, nil
	}
	cat, err := loadCatalog(store.WithTenant(ctx, tenant), c.db, c.nhis)
	if err != nil {
		return nil, apperr.Wrap(err, apperr.KindUnavailable, "the tool catalog is unavailable")
	}
	sl.cat.Store(cat)
	sl.built.Store(gen)
	return cat, nil
}

func loadCatalog(ctx context.Context, db *store.DB, nhis NHIs) (*catalog, error) {
	cat := &catalog{bySlug: map[string]*serverEntry{}, byID: map[uuid.UUID]*serverEntry{}, byPrefixed: map[string]*toolEntry{}}
	// The tool servers, from their domain; then their tools.
	servers, err := nhis.Refs(ctx, nhi.KindToolServer)
	if err != nil {
		return nil, err
	}
	for _, r := range servers {
		s := &serverEntry{id: r.ID, slug: r.Slug, active: r.Status == nhi.StatusActive, byName: map[string]*toolEntry{}}
		cat.bySlug[s.slug], cat.byID[s.id] = s, s
	}
	err = db.InTenantRead(ctx, func(tx *store.Tx) error {
		rows, err := catalogRows(ctx, tx)
		if err != nil {
			return err
		}
		for _, r := range rows {
			s := cat.byID[r.server]
			if s == nil {
				continue
			}
			t := &toolEntry{server: s, name: r.name, def: r.def, ent: r.ent, hash: r.hash, prefixed: renamed(r.def, s.slug+"__"+r.name)}
			s.tools = append(s.tools, t)
			s.byName[r.name] = t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slugs := make([]string, 0, len(cat.bySlug))
	for slug, s := range cat.bySlug {
		slugs = append(slugs, slug)
		sort.Slice(s.tools, func(i, j int) bool { return s.tools[i].name < s.tools[j].name })
	}
	sort.Strings(slugs)
	for _, slug := range slugs {
		for _, t := range cat.bySlug[slug].tools {
			cat.all = append(cat.all, t)
			cat.byPrefixed[slug+"__"+t.name] = t
		}
	}
	return cat, nil
}

// renamed returns a definition with another name, the rest kept raw.
func renamed(def json.RawMessage, name string) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(def, &m) != nil {
		return def
	}
	m["name"], _ = json.Marshal(name)
	out, err := json.Marshal(m)
	if err != nil {
		return def
	}
	return out
}

// canonicalHash hashes a definition independent of whitespace and key order.
func canonicalHash(def json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(def, &v); err != nil {
		return "", err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// inputSchema compiles the tool's input schema once. Schemas may not load
// anything: no remote or file references.
func (t *toolEntry) inputSchema() (*jsonschema.Schema, error) {
	t.schemaOnce.Do(func() {
		var d struct {
			InputSchema json.RawMessage `json:"inputSchema"`
		}
		if err := json.Unmarshal(t.def, &d); err != nil || len(d.InputSchema) == 0 {
			t.schemaErr = fmt.Errorf("the tool has no input schema")
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.InputSchema))
		if err != nil {
			t.schemaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.UseLoader(jsonschema.SchemeURLLoader{})
		c.DefaultDraft(jsonschema.Draft2020)
		const loc = "urn:xavyo:tool-input"
		if err := c.AddResource(loc, doc); err != nil {
			t.schemaErr = err
			return
		}
		t.schema, t.schemaErr = c.Compile(loc)
	})
	return t.schema, t.schemaErr
}

// Sync refreshes a tool server's catalog from its upstream (tools/list,
// every page): one entitlement per tool; new or changed tools wait for
// approval unless the server auto-approves.
func (g *Gateway) Sync(ctx context.Context, id uuid.UUID) (*SyncReport, error) {
	n, err := g.toolServer(ctx, id, "manage")
	if err != nil {
		return nil, err
	}
	return g.sync(ctx, n)
}

func (g *Gateway) sync(ctx context.Context, n *nhi.NHI) (*SyncReport, error) {
	rep, err := g.syncTools(ctx, n)
	msg := ""
	if err != nil {
		msg = apperr.PublicMessage(err)
	}
	now := store.Now()
	if werr := g.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		return recordSync(ctx, tx, n.ID, now, msg)
	}); werr != nil && err == nil {
		err = werr
	}
	return rep, err
}

func (g *Gateway) syncTools(ctx context.Context, n *nhi.NHI) (*SyncReport, error) {
	up, err := g.upstreamFor(ctx, n)
	if err != nil {
		return nil, err
	}
	type fetched struct {
		name string
		def  json.RawMessage
		hash string
	}
	var tools []fetched
	rep := &SyncReport{ServerID: n.ID, Removed: []string{}, Skipped: []map[string]string{}}
	seen := map[string]bool{}
	cursor := ""
	for page := 0; ; page++ {
		if page == maxPages {
			return nil, apperr.New(apperr.KindUnavailable, "the tool server listed more than %d pages", maxPages)
		}
		params := json.RawMessage(`{}`)
		if cursor != "" {
			params, _ = json.Marshal(map[string]string{"cursor": cursor})
		}
		res, err := up.call(ctx, "tools/list", params, nil)
		if err != nil {
			return nil, err
		}
		if res.Error != nil {
			return nil, apperr.New(apperr.KindUnavailable, "the tool server refused tools/list: %s", res.Error.Message)
		}
		var body struct {
			Tools      []json.RawMessage `json:"tools"`
			NextCursor string            `json:"nextCursor"`
		}
		if err := json.Unmarshal(res.Result, &body); err != nil {
			return nil, apperr.New(apperr.KindUnavailable, "the tool server sent a malformed tools/list result")
		}
		for _, raw := range body.Tools {
			var d struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(raw, &d); err != nil {
				rep.Skipped = append(rep.Skipped, map[string]string{"name": "", "reason": "not a JSON object"})
				continue
			}
			if !toolNameRE.MatchString(d.Name) || !governance.ValidToolKey(d.Name) {
				rep.Skipped = append(rep.Skipped, map[string]string{"name": d.Name, "reason": "a tool name is 1 to 128 characters of A-Z, a-z, 0-9, _, - and ., starting with a letter or digit"})
				continue
			}
			if seen[d.Name] {
				rep.Skipped = append(rep.Skipped, map[string]string{"name": d.Name, "reason": "listed twice"})
				continue
			}
			seen[d.Name] = true
			var buf bytes.Buffer
			if err := json.Compact(&buf, raw); err != nil {
				continue
			}
			h, err := canonicalHash(raw)
			if err != nil {
				continue
			}
			tools = append(tools, fetched{name: d.Name, def: buf.Bytes(), hash: h})
			if len(tools) > maxTools {
				return nil, apperr.New(apperr.KindUnavailable, "the tool server listed more than %d tools", maxTools)
			}
		}
		if body.NextCursor == "" {
			break
		}
		cursor = body.NextCursor
	}
	app, err := g.cfg.Gov.ApplicationFor(ctx, n)
	if err != nil {
		return nil, err
	}
	pinned, err := g.pinnedTools(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	in := make([]governance.Tool, len(tools))
	for i, t := range tools {
		in[i] = governance.Tool{Name: t.name, Hash: t.hash}
		// Under the description policy a change that leaves what the agent
		// reads (description, titles) as approved keeps the approval.
		if p, ok := pinned[t.name]; ok && up.cfg.pinPolicy == PinDescription && p.hash != "" && p.hash != t.hash && sameText(p.def, t.def) {
			in[i].Reapprove = true
		}
	}
	results, err := g.cfg.Gov.UpsertTools(ctx, app, in, up.cfg.auto)
	if err != nil {
		return nil, err
	}
	rep.Tools = results
	entOf := map[string]uuid.UUID{}
	approved := map[string]bool{}
	for _, r := range results {
		entOf[r.Name] = r.EntitlementID
		approved[r.Name] = r.ApprovalState == governance.Approved
	}
	now := store.Now()
	err = g.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error {
		rep.Removed = rep.Removed[:0]
		names, err := toolNames(ctx, tx, n.ID)
		if err != nil {
			return err
		}
		for _, name := range names {
			if !seen[name] {
				rep.Removed = append(rep.Removed, name)
			}
		}
		for _, name := range rep.Removed {
			if err := deleteTool(ctx, tx, n.ID, name); err != nil {
				return err
			}
		}
		for _, t := range tools {
			// An approved definition is pinned; a quarantined one waits
			// beside the pinned one for an admin.
			if err := upsertTool(ctx, tx, n.ID, t.name, t.def, t.hash, entOf[t.name], now, approved[t.name]); err != nil {
				return err
			}
		}
		if err := events.Publish(ctx, tx, events.Change{TenantID: tx.TenantID(), Kind: EventCatalog, ID: n.ID.String()}, nil); err != nil {
			return err
		}
		for _, r := range results {
			if r.Outcome != "changed" {
				continue
			}
			var cur json.RawMessage
			for _, t := range tools {
				if t.name == r.Name {
					cur = t.def
				}
			}
			action := "mcp.tool.quarantine"
			if r.ApprovalState == governance.Approved {
				action = "mcp.tool.repin"
			}
			if err := audit.RecordChangeTx(ctx, tx, g.cfg.Audit, action, "mcp_tool", n.Slug+"/"+r.Name, map[string]any{"server_id": n.ID,
				"tool": r.Name, "entitlement_id": r.EntitlementID, "approval_state": r.ApprovalState, "pinned_hash": pinned[r.Name].hash,
				"changed": changedFields(pinned[r.Name].def, cur)}); err != nil {
				return err
			}
		}
		return audit.RecordChangeTx(ctx, tx, g.cfg.Audit, "mcp.catalog.sync", "nhi", n.ID.String(),
			map[string]any{"tools": len(tools), "removed": rep.Removed, "skipped": len(rep.Skipped)})
	})
	if err != nil {
		return nil, err
	}
	rep.SyncedAt = now
	return rep, nil
}

// Tools lists a tool server's synced catalog.
func (g *Gateway) Tools(ctx context.Context, id uuid.UUID) ([]Tool, error) {
	if _, err := g.toolServer(ctx, id, "use"); err != nil {
		return nil, err
	}
	var out []Tool
	err := g.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = toolsOf(ctx, tx, id)
		return err
	})
	return out, err
}

// pinnedTool is what a tool server's catalog holds of one tool: the
// approved (pinned) definition and the latest one listed.
type pinnedTool struct {
	def, latest json.RawMessage
	hash        string
	latestHash  string
	ent         uuid.UUID
}

// pinnedTools reads a tool server's pinned definitions by tool name.
func (g *Gateway) pinnedTools(ctx context.Context, server uuid.UUID) (map[string]pinnedTool, error) {
	var out map[string]pinnedTool
	err := g.cfg.DB.InTenantRead(ctx, func(tx *store.Tx) error {
		var err error
		out, err = pinnedToolsOf(ctx, tx, server)
		return err
	})
	return out, err
}

// sameText reports whether two definitions read the same to an agent —
// description, title and annotations.title: under the description pin
// policy only these need an admin's re-approval.
func sameText(a, b json.RawMessage) bool {
	var x, y struct {
		Description *string `json:"description"`
		Title       *string `json:"title"`
		Annotations struct {
			Title *string `json:"title"`
		} `json:"annotations"`
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	eq := func(p, q *string) bool { return (p == nil) == (q == nil) && (p == nil || *p == *q) }
	return eq(x.Description, y.Description) && eq(x.Title, y.Title) && eq(x.Annotations.Title, y.Annotations.Title)
}

// FieldChange is one top-level member of a tool definition that differs
// between the pinned and the latest definition.
type FieldChange struct {
	Field string          `json:"field"`
	Old   json.RawMessage `json:"old,omitempty" doc:"absent: the member is new"`
	New   json.RawMessage `json:"new,omitempty" doc:"absent: the member was removed"`
}

// changedFields lists the top-level members that differ, by name.
func changedFields(pinned, latest json.RawMessage) []FieldChange {
	var a, b map[string]json.RawMessage
	_ = json.Unmarshal(pinned, &a)
	_ = json.Unmarshal(latest, &b)
	names := map[string]bool{}
	for k := range a {
		names[k] = true
	}
	for k := range b {
		names[k] = true
	}
	out := []FieldChange{}
	for k := range names {
		ha, _ := canonicalHash(a[k])
		hb, _ := canonicalHash(b[k])
		if a[k] == nil || b[k] == nil || ha != hb {
			out = append(out, FieldChange{Field: k, Old: a[k], New: b[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// ToolDiff shows an admin what changed in a tool before they approve it.
type ToolDiff struct {
	Tool          string          `json:"tool"`
	EntitlementID uuid.UUID       `json:"entitlement_id"`
	PinnedHash    string          `json:"pinned_hash,omitempty" doc:"the approved definition's hash (empty: never approved)"`
	LatestHash    string          `json:"latest_hash"`
	Pinned        json.RawMessage `json:"pinned,omitempty"`
	Latest        json.RawMessage `json:"latest"`
	Changes       []FieldChange   `json:"changes" doc:"top-level members that differ"`
}

// Diff compares a tool's pinned (approved) and latest definitions.
func (g *Gateway) Diff(ctx context.Context, server uuid.UUID, tool string) (*ToolDiff, error) {
	if _, err := g.toolServer(ctx, server, "use"); err != nil {
		return nil, err
	}
	all, err := g.pinnedTools(ctx, server)
	if err != nil {
		return nil, err
	}
	p, ok := all[tool]
	if !ok {
		return nil, apperr.NotFound("tool")
	}
	d := &ToolDiff{Tool: tool, EntitlementID: p.ent, PinnedHash: p.hash, LatestHash: p.latestHash, Latest: p.latest, Changes: changedFields(p.def, p.latest)}
	if p.hash != "" {
		d.Pinned = p.def
	}
	return d, nil
}

// OnEntitlementEvent pins a tool's latest definition when an admin
// approves it (outbox handler; idempotent).
func (g *Gateway) OnEntitlementEvent(ctx context.Context, ev events.Event) error {
	id, err := uuid.Parse(ev.SubjectID)
	if err != nil {
		return nil
	}
	ctx = store.WithTenant(ctx, ev.TenantID)
	hash, err := g.cfg.Gov.ApprovedDefinitionHash(ctx, id)
	if err != nil || hash == "" {
		return err
	}
	return g.cfg.DB.InTenantTx(ctx, func(tx *store.Tx) error { return pinApproved(ctx, tx, id, hash) })
}
