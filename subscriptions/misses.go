package subscriptions

import (
	"sync"
	"sync/atomic"
	"time"
)

// Unknown key ids: a well-formed key whose id this replica's index does not
// hold costs a read at the keys bucket's leader. Misses remembers, for a
// short while, the ids that read did not find, so a client repeating an
// unknown key is refused from memory.
const (
	// missTTL is how long an unknown id is refused from memory. Keys are
	// made with ids nobody can know beforehand, and a key put (this
	// replica's write or its watch's) forgets its id at once, so a key
	// made elsewhere is refused from memory at most this long, and only
	// if its id was tried before it existed.
	missTTL = 5 * time.Second
	// maxMisses bounds the ids remembered (about 100 bytes each).
	maxMisses = 10000
)

// misses is a bounded negative cache of key ids. It is safe for
// concurrent use.
type misses struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu    sync.Mutex
	until map[string]time.Time
	// gen counts key puts: a lookup that began before one records no miss,
	// since the key it did not find may be the one just put.
	gen uint64
	// swept is when expired ids were last dropped.
	swept time.Time

	hits atomic.Uint64
}

func newMisses(ttl time.Duration, max int, now func() time.Time) *misses {
	if now == nil {
		now = time.Now
	}
	return &misses{ttl: ttl, max: max, now: now, until: make(map[string]time.Time)}
}

// known reports whether id was not found in storage within the TTL.
func (m *misses) known(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.until[id]
	if !ok {
		return false
	}
	if !m.now().Before(t) {
		delete(m.until, id)
		return false
	}
	m.hits.Add(1)
	return true
}

// begin returns the generation a lookup starts at, for add.
func (m *misses) begin() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// add remembers that storage did not hold id, unless a key was put since
// the lookup began at gen. Past its bound it drops expired ids, then, when
// still full, an arbitrary one: it stays bounded and a flood of distinct
// ids only makes it forget sooner.
func (m *misses) add(id string, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if gen != m.gen {
		return
	}
	now := m.now()
	if _, ok := m.until[id]; !ok && len(m.until) >= m.max {
		if now.Sub(m.swept) >= m.ttl/10 {
			m.swept = now
			for k, t := range m.until {
				if !now.Before(t) {
					delete(m.until, k)
				}
			}
		}
		for k := range m.until {
			if len(m.until) < m.max {
				break
			}
			delete(m.until, k)
		}
	}
	m.until[id] = now.Add(m.ttl)
}

// forget drops id: a key with it was just put.
func (m *misses) forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	delete(m.until, id)
}

// len is the number of ids held.
func (m *misses) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.until)
}
