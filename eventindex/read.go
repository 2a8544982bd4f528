package eventindex

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/onestack/webhooks/internal/streamindex"
	"github.com/onestack/webhooks/problem"
)

// Event is what the index knows of one event; its body stays in the
// stream, at Seq.
type Event struct {
	ID         string
	Type       string
	OccurredAt time.Time
	Seq        uint64
}

// Query selects a page of a tenant's events, newest first.
type Query struct {
	// Type keeps one event type ("" for all).
	Type string
	// Since and Until bound when the events occurred, both included (zero:
	// unbounded).
	Since, Until time.Time
	// Cursor continues after the page that returned it ("" for the first).
	Cursor string
	// Limit is the page's size (at least 1).
	Limit int
}

// cursorPrefix starts every cursor: "p", then the position (time and
// sequence) of the last event of the page, in hex: letters and digits
// only, so it travels inside any cursor the API makes.
const cursorPrefix = "p"

// expressible reports whether UnixNano can hold t (with a margin).
func expressible(t time.Time) bool { return t.Year() > 1700 && t.Year() < 2200 }

func encodeCursor(occurred time.Time, seq uint64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], timeBits(occurred))
	binary.BigEndian.PutUint64(b[8:], seq)
	return cursorPrefix + hex.EncodeToString(b[:])
}

func decodeCursor(c string) ([]byte, bool) {
	rest, ok := strings.CutPrefix(c, cursorPrefix)
	if !ok || len(rest) != 32 {
		return nil, false
	}
	b, err := hex.DecodeString(rest)
	return b, err == nil
}

// List returns a page of tenant's events, newest first (by when they
// occurred, then by stream order), and the cursor of the next page ("" on
// the last). A page costs the page: it reads one key range, of the
// tenant's events or of one type's. A cursor this index did not make is
// an error wrapping ErrInvalid.
func (ix *Index) List(ctx context.Context, tenant string, q Query) ([]Event, string, error) {
	var pos []byte
	if q.Cursor != "" {
		var ok bool
		if pos, ok = decodeCursor(q.Cursor); !ok {
			return nil, "", fmt.Errorf("list events: cursor %q: %w: %w", q.Cursor, ErrInvalid, problem.ErrInvalidCursor)
		}
	}
	limit := max(q.Limit, 1)
	// Times a nanosecond count cannot hold bound nothing.
	if !expressible(q.Since) {
		q.Since = time.Time{}
	}
	if !expressible(q.Until) {
		q.Until = time.Time{}
	}
	release, err := ix.store.Reading()
	if err != nil {
		return nil, "", err
	}
	defer release()
	var prefix []byte
	if q.Type != "" {
		prefix = typePrefix(nil, tenant, q.Type)
	} else {
		prefix = listPrefix(nil, tenant)
	}
	lower, upper := prefix, streamindex.PrefixEnd(prefix)
	if !q.Since.IsZero() {
		lower = binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), timeBits(q.Since))
	}
	if !q.Until.IsZero() {
		upper = binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), timeBits(q.Until.Add(time.Nanosecond)))
	}
	if pos != nil {
		if c := append(append([]byte(nil), prefix...), pos...); string(c) < string(upper) {
			upper = c
		}
	}
	if string(lower) >= string(upper) {
		return []Event{}, "", nil
	}
	it, err := ix.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, "", fmt.Errorf("list events: %w: %w", ErrUnavailable, err)
	}
	defer it.Close()
	out := make([]Event, 0, min(limit, 64))
	for valid := it.Last(); valid; valid = it.Prev() {
		if len(out) == limit {
			last := out[len(out)-1]
			return out, encodeCursor(last.OccurredAt, last.Seq), nil
		}
		if err := ctx.Err(); err != nil {
			return nil, "", fmt.Errorf("list events: %w", err)
		}
		key := it.Key()
		if len(key) != len(prefix)+16 {
			continue
		}
		occ := binary.BigEndian.Uint64(key[len(prefix):])
		e := Event{OccurredAt: time.Unix(0, int64(occ^1<<63)).UTC(), Seq: binary.BigEndian.Uint64(key[len(prefix)+8:])}
		val, err := it.ValueAndErr()
		if err != nil {
			return nil, "", fmt.Errorf("list events: %w: %w", ErrUnavailable, err)
		}
		if q.Type != "" {
			e.Type, e.ID = q.Type, string(val)
		} else {
			var ok bool
			var rest []byte
			if e.Type, rest, ok = streamindex.ReadString(val); !ok {
				continue
			}
			if e.ID, _, ok = streamindex.ReadString(rest); !ok {
				continue
			}
		}
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		return nil, "", fmt.Errorf("list events: %w: %w", ErrUnavailable, err)
	}
	return out, "", nil
}

// Lookup returns tenant's event id: the latest stored with that id (an id
// reused after the duplicate window names a new event). An unknown,
// expired or another tenant's id wraps ErrNotFound.
func (ix *Index) Lookup(ctx context.Context, tenant, id string) (Event, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, fmt.Errorf("event %s: %w", id, err)
	}
	release, err := ix.store.Reading()
	if err != nil {
		return Event{}, err
	}
	defer release()
	v, err := ix.store.Get(idKey(nil, tenant, id))
	if err != nil {
		return Event{}, err
	}
	if len(v) < 16 {
		return Event{}, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	typ, _, ok := streamindex.ReadString(v[16:])
	if !ok {
		return Event{}, fmt.Errorf("event %s: %w", id, ErrNotFound)
	}
	return Event{ID: id, Type: typ, OccurredAt: time.Unix(0, int64(binary.BigEndian.Uint64(v)^1<<63)).UTC(),
		Seq: binary.BigEndian.Uint64(v[8:16])}, nil
}
