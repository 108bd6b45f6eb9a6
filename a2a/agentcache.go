package a2a

import (
	"sync"

	"github.com/google/uuid"

	"github.com/xavyo/xavyo/identity/nhi"
	"github.com/xavyo/xavyo/identity/tenant"
	"github.com/xavyo/xavyo/internal/events"
)

// agentCache keeps each tenant's agent records, which the A2A plane reads
// on every call and card. An entry is dropped when an NHI or an agent's
// card of its tenant changes (change events reach every replica) and all
// are dropped on a resync; a load that raced a change is not kept.
// Records are shared: nobody changes them once loaded.
type agentCache struct {
	mu      sync.Mutex
	epoch   uint64               // bumped on resync
	gen     map[uuid.UUID]uint64 // bumped per tenant on each change
	tenants map[uuid.UUID]cachedAgents
}

type cachedAgents struct {
	epoch, gen uint64
	list       []*agentRecord
}

// cardEvent is the change event of an agent's imported card.
const cardEvent = "a2a.card"

func newAgentCache(bus *events.Bus) *agentCache {
	c := &agentCache{gen: map[uuid.UUID]uint64{}, tenants: map[uuid.UUID]cachedAgents{}}
	bus.Subscribe(func(m events.Message) {
		if m.Resync {
			c.mu.Lock()
			c.epoch++
			clear(c.tenants)
			c.mu.Unlock()
			return
		}
		c.changed(m.Change)
	})
	return c
}

// changed drops the tenant's records when c is an NHI, card or tenant
// change (a second time for this replica's own changes: harmless).
func (c *agentCache) changed(ch events.Change) {
	if ch.Kind != nhi.EventKind && ch.Kind != cardEvent && ch.Kind != tenant.EventKind {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen[ch.TenantID]++
	delete(c.tenants, ch.TenantID)
}

// get returns a tenant's cached records, or the stamp a load must present
// to keep what it read.
func (c *agentCache) get(tenant uuid.UUID) (list []*agentRecord, ok bool, stamp cachedAgents) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.tenants[tenant]; ok {
		return e.list, true, e
	}
	return nil, false, cachedAgents{epoch: c.epoch, gen: c.gen[tenant]}
}

// put keeps a load unless a change came in since its stamp was taken.
func (c *agentCache) put(tenant uuid.UUID, stamp cachedAgents, list []*agentRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp.epoch != c.epoch || stamp.gen != c.gen[tenant] {
		return
	}
	stamp.list = list
	c.tenants[tenant] = stamp
}
