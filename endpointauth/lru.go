package endpointauth

import (
	"container/list"
	"time"
)

// lru is a map bounded to its most recently used entries; onEvict sees
// each entry pushed out. Each entry remembers when it was last used, so
// that those idle too long can be dropped (dropIdle). It is not safe for
// concurrent use: its owner locks around it.
type lru[K comparable, V any] struct {
	max     int
	ll      *list.List // of *lruEntry[K, V], most recent first
	m       map[K]*list.Element
	onEvict func(K, V)
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	used time.Time
}

func newLRU[K comparable, V any](max int, onEvict func(K, V)) *lru[K, V] {
	return &lru[K, V]{max: max, ll: list.New(), m: make(map[K]*list.Element), onEvict: onEvict}
}

// get returns the value of key and marks it used at now.
func (c *lru[K, V]) get(key K, now time.Time) (V, bool) {
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		ent := e.Value.(*lruEntry[K, V])
		ent.used = now
		return ent.val, true
	}
	var zero V
	return zero, false
}

// put sets key's value, used at now, evicting the least recently used
// entry past max.
func (c *lru[K, V]) put(key K, val V, now time.Time) {
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		ent := e.Value.(*lruEntry[K, V])
		ent.val, ent.used = val, now
		return
	}
	c.m[key] = c.ll.PushFront(&lruEntry[K, V]{key, val, now})
	for c.ll.Len() > c.max {
		c.remove(c.ll.Back())
	}
}

// dropIdle evicts the entries last used before since. The list is in
// order of use, so it stops at the first one used since.
func (c *lru[K, V]) dropIdle(since time.Time) {
	for e := c.ll.Back(); e != nil && e.Value.(*lruEntry[K, V]).used.Before(since); e = c.ll.Back() {
		c.remove(e)
	}
}

// delete removes key, as an eviction.
func (c *lru[K, V]) delete(key K) {
	if e, ok := c.m[key]; ok {
		c.remove(e)
	}
}

func (c *lru[K, V]) remove(e *list.Element) {
	ent := e.Value.(*lruEntry[K, V])
	c.ll.Remove(e)
	delete(c.m, ent.key)
	if c.onEvict != nil {
		c.onEvict(ent.key, ent.val)
	}
}

func (c *lru[K, V]) len() int { return c.ll.Len() }
