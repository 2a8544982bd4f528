package eventindex

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// The duplicate window on disk. NATS remembers the message ids of the
// events stream in memory for its own window (Duplicates), which is kept
// short; the index remembers every event id of the stream's retention on
// disk. An id is a duplicate if the index holds it within the duplicate
// window, or if NATS does (what the index has not applied yet, or was
// published at the same time). That leaves no gap as long as the index
// holds every event stored before NATS's window began: [Index.Seen] makes
// sure of that before it answers, and [Duplicates] says how far back that
// is.

// reach is how far the index is known to hold the stream: every event
// stored before the time it covers has been applied.
type reach struct {
	mu sync.Mutex
	// marks are the last messages of the last two batches applied, newest
	// first: the newest may not be committed yet.
	marks [2]mark
	// synced is when a Sync began that the index then caught up with.
	synced time.Time
}

type mark struct {
	seq    uint64
	stored time.Time
}

// applying notes the last message of a batch about to be committed.
func (r *reach) applying(seq uint64, stored time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.marks[0].seq != seq {
		r.marks[1] = r.marks[0]
	}
	r.marks[0] = mark{seq, stored}
}

// caughtUp notes that every event stored before t has been applied.
func (r *reach) caughtUp(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t.After(r.synced) {
		r.synced = t
	}
}

// covers reports whether every event stored before cutoff is known to be
// applied, given the last sequence committed.
func (r *reach) covers(cutoff time.Time, applied uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return covers(r.marks, r.synced, cutoff, applied)
}

// covers is reach.covers's decision: the newest batch committed (its last
// message stored at or after cutoff) or the last sync (begun at or after
// cutoff) reaches cutoff. Stored times follow stream order.
func covers(marks [2]mark, synced, cutoff time.Time, applied uint64) bool {
	if !synced.Before(cutoff) {
		return true
	}
	for _, m := range marks {
		if m.seq != 0 && m.seq <= applied {
			return !m.stored.Before(cutoff)
		}
	}
	return false
}

// Seen reports, for each of ids, whether tenant has an event stored with
// it at or after since. It answers only once the index holds every event
// stored before reach: when what it is known to hold does not go that far
// (it was idle, or it is behind: rebuilding, just restarted), it first
// catches up with the stream (one stream info request, then a wait bounded
// as [Index.Sync]'s), and fails with an error wrapping ErrUnavailable when
// it cannot. It never reports an id unseen that it may not hold.
func (ix *Index) Seen(ctx context.Context, tenant string, ids []string, since, reach time.Time) ([]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if !ix.reach.covers(reach, ix.store.Applied()) {
		began := ix.now()
		if err := ix.store.Sync(ctx); err != nil {
			return nil, fmt.Errorf("event ids: %w", err)
		}
		ix.reach.caughtUp(began)
	}
	release, err := ix.store.Reading()
	if err != nil {
		return nil, err
	}
	defer release()
	seen := make([]bool, len(ids))
	// Scratch on the stack: an id key and its value fit (a longer one
	// moves to the heap).
	var kbuf, vbuf [128]byte
	for i, id := range ids {
		kb := idKey(kbuf[:0], tenant, id)
		v, found, err := ix.store.AppendValue(vbuf[:0], kb)
		if err != nil {
			return nil, fmt.Errorf("event %s: %w", id, err)
		}
		if stored, ok := idStored(v); found && ok && !stored.Before(since) {
			seen[i] = true
		}
	}
	return seen, nil
}

// Duplicates answers, for the events API, whether a tenant's event ids
// were stored within the duplicate window, so that one posted again is
// answered without publishing it. NATS's own window covers the most
// recent events; the index must reach back to where that window begins,
// less Margin.
type Duplicates struct {
	Index *Index
	// Window is the duplicate window (--dedupe-window).
	Window time.Duration
	// StreamWindow is the events stream's own (Duplicates).
	StreamWindow time.Duration
	// Margin is how much further back than StreamWindow the index must
	// hold: at least a publish's longest time in flight (its timeout, a
	// publish that answered 503 may still land) and the clocks' skew
	// between NATS and this process. A margin as long as StreamWindow or
	// longer makes every check catch up with the stream first.
	Margin time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Seen reports, for each of ids, whether tenant stored an event with it
// within the window; an error wraps ErrUnavailable (the index cannot tell
// now: retry).
func (d Duplicates) Seen(ctx context.Context, tenant string, ids []string) ([]bool, error) {
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	return d.Index.Seen(ctx, tenant, ids, now.Add(-d.Window), now.Add(d.Margin-d.StreamWindow))
}
