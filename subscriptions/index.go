package subscriptions

import (
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/filter"
)

// Index is the in-memory view of tenants, API keys and subscriptions that
// every replica keeps, fed by KV watches and by its own writes. Matching an
// event, authenticating a key and reading a subscription use it and never
// storage. It is safe for concurrent use; the *Subscription values it
// hands out are shared and must not be modified.
type Index struct {
	mu      sync.RWMutex
	tenants map[string]*Tenant
	keys    map[string]*APIKey
	subs    map[string]*tenantSubs // by tenant
	// revs is the last revision applied per bucket key, so a late watch
	// update never undoes a newer local write. A deleted key keeps its
	// entry (a tombstone) only until its bucket's watch has passed the
	// deletion: from then on no older update can arrive, so the entry goes
	// and the map follows the live keys, not every key ever deleted.
	revs map[string]uint64
	// watched is, per bucket, the last revision the watch delivered.
	watched map[string]uint64
	// ordered holds the FIFO subscriptions, by bucket key.
	ordered map[string]*Subscription
	// filters compiles subscriptions' filters as they enter.
	filters *filter.Compiler
	// misses are key ids storage recently did not hold; a key put forgets
	// its id.
	misses *misses
}

// tenantSubs is one tenant's subscriptions and its matcher.
type tenantSubs struct {
	byID map[string]*Subscription
	// byPattern maps each pattern ("ticket.updated", "ticket.*", "*") to
	// the subscriptions that list it; rebuilt on every change.
	byPattern map[string][]*Subscription
}

func newIndex() *Index {
	return &Index{
		tenants: make(map[string]*Tenant),
		keys:    make(map[string]*APIKey),
		subs:    make(map[string]*tenantSubs),
		revs:    make(map[string]uint64),
		watched: make(map[string]uint64),
		ordered: make(map[string]*Subscription),
		filters: newFilterCompiler(),
		misses:  newMisses(missTTL, maxMisses, nil),
	}
}

// fresh reports whether rev is newer than what was applied for key, and
// records it. Callers hold mu.
func (x *Index) fresh(bucketKey string, rev uint64) bool {
	if rev <= x.revs[bucketKey] {
		return false
	}
	x.revs[bucketKey] = rev
	return true
}

// deleted settles the revision entry of a key just deleted at rev: a
// deletion the watch delivered (or one the watch has already passed) can
// be outrun by nothing older, so no tombstone is kept. Callers hold mu.
func (x *Index) deleted(bucket, bucketKey string, rev uint64, fromWatch bool) {
	if fromWatch {
		x.watched[bucket] = max(x.watched[bucket], rev)
	}
	if fromWatch || rev <= x.watched[bucket] {
		delete(x.revs, bucketKey)
	}
}

// sawWatch records how far a bucket's watch has got. Callers hold mu.
func (x *Index) sawWatch(bucket string, rev uint64, fromWatch bool) {
	if fromWatch {
		x.watched[bucket] = max(x.watched[bucket], rev)
	}
}

func (x *Index) putTenant(t *Tenant, fromWatch bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.sawWatch(bucketTenants, t.Revision, fromWatch)
	if x.fresh(bucketTenants+"/"+t.ID, t.Revision) {
		x.tenants[t.ID] = t
	}
}

func (x *Index) deleteTenant(id string, rev uint64, fromWatch bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	key := bucketTenants + "/" + id
	if x.fresh(key, rev) {
		delete(x.tenants, id)
	}
	x.deleted(bucketTenants, key, rev, fromWatch)
}

func (x *Index) putKey(k *APIKey, rev uint64, fromWatch bool) {
	x.misses.forget(k.ID)
	x.mu.Lock()
	defer x.mu.Unlock()
	x.sawWatch(bucketKeys, rev, fromWatch)
	if x.fresh(bucketKeys+"/"+k.ID, rev) {
		x.keys[k.ID] = k
	}
}

func (x *Index) deleteKey(id string, rev uint64, fromWatch bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	key := bucketKeys + "/" + id
	if x.fresh(key, rev) {
		delete(x.keys, id)
	}
	x.deleted(bucketKeys, key, rev, fromWatch)
}

func (x *Index) putSub(s *Subscription, fromWatch bool) {
	x.prepare(s)
	s.endpoint, _ = url.Parse(s.URL) // nil for a URL that does not parse: Endpoint says why
	x.mu.Lock()
	defer x.mu.Unlock()
	x.sawWatch(bucketSubs, s.Revision, fromWatch)
	if !x.fresh(bucketSubs+"/"+subKey(s.TenantID, s.ID), s.Revision) {
		return
	}
	ts := x.subs[s.TenantID]
	if ts == nil {
		ts = &tenantSubs{byID: make(map[string]*Subscription)}
		x.subs[s.TenantID] = ts
	}
	ts.byID[s.ID] = s
	ts.rebuild()
	if s.Ordered() {
		x.ordered[subKey(s.TenantID, s.ID)] = s
	} else {
		delete(x.ordered, subKey(s.TenantID, s.ID))
	}
}

func (x *Index) deleteSub(tenant, id string, rev uint64, fromWatch bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	key := bucketSubs + "/" + subKey(tenant, id)
	defer x.deleted(bucketSubs, key, rev, fromWatch)
	if !x.fresh(key, rev) {
		return
	}
	delete(x.ordered, subKey(tenant, id))
	if ts := x.subs[tenant]; ts != nil {
		delete(ts.byID, id)
		if len(ts.byID) == 0 {
			delete(x.subs, tenant)
			return
		}
		ts.rebuild()
	}
}

func (ts *tenantSubs) rebuild() {
	ts.byPattern = make(map[string][]*Subscription)
	for _, s := range ts.byID {
		for i, p := range s.EventTypes {
			if !slices.Contains(s.EventTypes[:i], p) { // each pattern's list holds a subscription once
				ts.byPattern[p] = append(ts.byPattern[p], s)
			}
		}
	}
}

// Match appends to dst every subscription of tenant, active or not, whose
// patterns match event type t, each once, and returns the extended slice.
// A webhook.test event matches nothing: it goes to one endpoint on request.
func (x *Index) Match(dst []*Subscription, tenant, t string) []*Subscription {
	if t == events.TypeWebhookTest {
		return dst
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	ts := x.subs[tenant]
	if ts == nil {
		return dst
	}
	// A subscription is in the list of each of its patterns once: one in
	// a later list is a repeat when it also has an earlier list's
	// pattern, which its own few patterns tell. Linear in the
	// subscriptions matched.
	family := events.FamilyPattern(t)
	dst = append(dst, ts.byPattern[t]...)
	for _, s := range ts.byPattern[family] {
		if !slices.Contains(s.EventTypes, t) {
			dst = append(dst, s)
		}
	}
	for _, s := range ts.byPattern[events.WildcardAll] {
		if !slices.Contains(s.EventTypes, t) && !slices.Contains(s.EventTypes, family) {
			dst = append(dst, s)
		}
	}
	return dst
}

// Ordered returns every FIFO subscription, of all tenants.
func (x *Index) Ordered() []*Subscription {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]*Subscription, 0, len(x.ordered))
	for _, s := range x.ordered {
		out = append(out, s)
	}
	return out
}

// WithAuth returns every subscription, of all tenants, that has endpoint
// authentication (a sweep of client certificates reads it).
func (x *Index) WithAuth() []*Subscription {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []*Subscription
	for _, ts := range x.subs {
		for _, s := range ts.byID {
			if s.auth != nil {
				out = append(out, s)
			}
		}
	}
	return out
}

// Subscription returns one of tenant's subscriptions.
// It is the index's as it is now: no I/O, fit for the hot path; this
// replica's own writes are in at once, another replica's a moment later
// (when the bucket's watch brings them). The subscription is shared and
// must not be modified.
func (x *Index) Subscription(tenant, id string) (*Subscription, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	ts := x.subs[tenant]
	if ts == nil {
		return nil, false
	}
	s, ok := ts.byID[id]
	return s, ok
}

// List returns up to limit of tenant's subscriptions, newest first, whose
// ids sort before before (all of them when before is empty), and whether
// more follow.
func (x *Index) List(tenant, before string, limit int) ([]*Subscription, bool) {
	x.mu.RLock()
	ts := x.subs[tenant]
	var all []*Subscription
	if ts != nil {
		all = make([]*Subscription, 0, len(ts.byID))
		for id, s := range ts.byID {
			if before == "" || strings.Compare(id, before) < 0 {
				all = append(all, s)
			}
		}
	}
	x.mu.RUnlock()
	slices.SortFunc(all, func(a, b *Subscription) int { return strings.Compare(b.ID, a.ID) })
	if len(all) > limit {
		return all[:limit], true
	}
	return all, false
}

// Tenant returns a tenant.
func (x *Index) Tenant(id string) (*Tenant, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	t, ok := x.tenants[id]
	return t, ok
}

// Authenticate returns the tenant and key id of a presented API key, or
// false for a malformed, unknown or revoked key. The comparison is in
// constant time against the stored hash.
func (x *Index) Authenticate(presented string) (tenant, key string, ok bool) {
	id, ok := keyID(presented)
	x.mu.RLock()
	k, found := x.keys[id]
	x.mu.RUnlock()
	if !ok || !found {
		// Hash anyway, so an unknown key takes as long as a wrong one.
		(&APIKey{Hash: dummyHash}).matches(presented)
		return "", "", false
	}
	if !k.matches(presented) {
		return "", "", false
	}
	return k.TenantID, k.ID, true
}

// hasKey reports whether the index holds a key id.
func (x *Index) hasKey(id string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.keys[id]
	return ok
}

// dummyHash is compared against when no key is stored under the claimed id.
const dummyHash = "0000000000000000000000000000000000000000000000000000000000000000"
