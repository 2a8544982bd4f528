package client

import (
	"container/list"
	"sync"
)

// Cache keeps the last answers to GETs and their ETags, for revalidation
// with If-None-Match, at most a set number of them: the least recently
// used goes first, so a long-running client that reads many paths holds a
// bounded amount. A Cache may be shared by several Clients (Config.Cache);
// each keeps its answers apart from the others' under its
// Config.CacheScope. It is safe for concurrent use.
type Cache struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *cacheEntry, most recently used first
	byKey map[string]*list.Element
}

type cacheEntry struct {
	key string
	cached
}

// NewCache returns a cache of at most entries answers (at least one).
func NewCache(entries int) *Cache {
	return &Cache{max: max(entries, 1), order: list.New(), byKey: make(map[string]*list.Element)}
}

func (c *Cache) get(key string) (cached, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byKey[key]
	if !ok {
		return cached{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).cached, true
}

func (c *Cache) put(key string, v cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		el.Value.(*cacheEntry).cached = v
		c.order.MoveToFront(el)
		return
	}
	c.byKey[key] = c.order.PushFront(&cacheEntry{key: key, cached: v})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*cacheEntry).key)
	}
}

func (c *Cache) remove(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byKey[key]; ok {
		c.order.Remove(el)
		delete(c.byKey, key)
	}
}

func (c *Cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
