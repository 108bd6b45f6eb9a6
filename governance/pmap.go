package governance

import (
	"maps"

	"github.com/google/uuid"
)

// pmap is a persistent map: 256 shards, so that a new snapshot version
// copies only the shards its delta touches and shares the rest with the
// version it came from. A pmap is read-only once its snapshot is
// published; between thaw and freeze one goroutine edits it.
type pmap[K comparable, V any] struct {
	sh    *[256]map[K]V
	shard func(K) uint8
	// owned marks, while a delta is applied, the shards this version has
	// already copied (nil: frozen).
	owned *[256]bool
}

func newPmap[K comparable, V any](shard func(K) uint8) pmap[K, V] {
	return pmap[K, V]{sh: new([256]map[K]V), shard: shard, owned: new([256]bool)}
}

// uuidShard and subjectShard pick a shard from an id's last byte (random
// in both UUIDv4 and UUIDv7).
func uuidShard(id uuid.UUID) uint8    { return id[15] }
func subjectShard(k subjectKey) uint8 { return k.id[15] }
func stringShard(s string) (h uint8) { // FNV-1a folded to a byte
	x := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		x = (x ^ uint32(s[i])) * 16777619
	}
	return uint8(x ^ x>>8 ^ x>>16 ^ x>>24)
}

func (m pmap[K, V]) get(k K) (V, bool) {
	v, ok := m.sh[m.shard(k)][k]
	return v, ok
}

func (m pmap[K, V]) at(k K) V {
	return m.sh[m.shard(k)][k]
}

// thaw starts a new version: the shard table is copied, shards are copied
// on their first write.
func (m *pmap[K, V]) thaw() {
	sh := *m.sh
	m.sh = &sh
	m.owned = new([256]bool)
}

func (m *pmap[K, V]) freeze() { m.owned = nil }

func (m *pmap[K, V]) writable(k K) map[K]V {
	i := m.shard(k)
	if !m.owned[i] {
		m.sh[i] = maps.Clone(m.sh[i])
		if m.sh[i] == nil {
			m.sh[i] = map[K]V{}
		}
		m.owned[i] = true
	}
	return m.sh[i]
}

func (m *pmap[K, V]) set(k K, v V) { m.writable(k)[k] = v }

func (m *pmap[K, V]) del(k K) {
	if _, ok := m.get(k); ok {
		delete(m.writable(k), k)
	}
}

func (m pmap[K, V]) len() int {
	n := 0
	for _, s := range m.sh {
		n += len(s)
	}
	return n
}

// each calls fn for every entry until fn returns false.
func (m pmap[K, V]) each(fn func(K, V) bool) {
	for _, s := range m.sh {
		for k, v := range s {
			if !fn(k, v) {
				return
			}
		}
	}
}
