package client

import "container/list"

// etagCache keeps the last answers to GETs and their ETags, at most max of
// them: the least recently used goes first, so a long-running client that
// reads many paths holds a bounded amount. Callers hold the client's lock.
type etagCache struct {
	max   int
	order *list.List // of *cacheEntry, most recently used first
	byKey map[string]*list.Element
}

type cacheEntry struct {
	path string
	cached
}

func newETagCache(max int) *etagCache {
	return &etagCache{max: max, order: list.New(), byKey: make(map[string]*list.Element)}
}

func (c *etagCache) get(path string) (cached, bool) {
	el, ok := c.byKey[path]
	if !ok {
		return cached{}, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheEntry).cached, true
}

func (c *etagCache) put(path string, v cached) {
	if el, ok := c.byKey[path]; ok {
		el.Value.(*cacheEntry).cached = v
		c.order.MoveToFront(el)
		return
	}
	c.byKey[path] = c.order.PushFront(&cacheEntry{path: path, cached: v})
	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.byKey, oldest.Value.(*cacheEntry).path)
	}
}

func (c *etagCache) remove(path string) {
	if el, ok := c.byKey[path]; ok {
		c.order.Remove(el)
		delete(c.byKey, path)
	}
}

func (c *etagCache) len() int { return c.order.Len() }
