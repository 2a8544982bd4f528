package eventindex

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/streamindex"
	"github.com/onestack/webhooks/tracing"
)

func TestCovers(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name    string
		marks   [2]mark
		synced  time.Time
		cutoff  time.Time
		applied uint64
		want    bool
	}{
		{"nothing known", [2]mark{}, time.Time{}, at(0), 0, false},
		{"last batch committed, stored after the cutoff", [2]mark{{10, at(5)}}, time.Time{}, at(0), 10, true},
		{"last batch committed, stored at the cutoff", [2]mark{{10, at(0)}}, time.Time{}, at(0), 10, true},
		{"last batch committed, stored before the cutoff (idle since)", [2]mark{{10, at(-5)}}, time.Time{}, at(0), 10, false},
		{"last batch not committed yet: the one before decides", [2]mark{{20, at(5)}, {10, at(1)}}, time.Time{}, at(0), 10, true},
		{"last batch not committed, the one before too old", [2]mark{{20, at(5)}, {10, at(-1)}}, time.Time{}, at(0), 10, false},
		{"neither batch committed (behind)", [2]mark{{20, at(5)}, {10, at(1)}}, time.Time{}, at(0), 5, false},
		{"synced after the cutoff", [2]mark{{10, at(-60)}}, at(1), at(0), 10, true},
		{"synced before the cutoff", [2]mark{{10, at(-60)}}, at(-1), at(0), 10, false},
		{"a cutoff in the future: only a sync reaches it", [2]mark{{10, at(0)}}, time.Time{}, at(30), 10, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := covers(tt.marks, tt.synced, tt.cutoff, tt.applied); got != tt.want {
				t.Errorf("covers(%v, %v, %v, %d) = %v, want %v", tt.marks, tt.synced, tt.cutoff, tt.applied, got, tt.want)
			}
		})
	}
}

func TestIDStored(t *testing.T) {
	occurred := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stored := occurred.Add(time.Hour)
	if got, ok := idStored(idValue(nil, occurred, 7, "ticket.updated", stored)); !ok || !got.Equal(stored) {
		t.Errorf("idStored(a value with a stored time) = %v, %v; want %v", got, ok, stored)
	}
	// As an index built before stored times were kept wrote it.
	old := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, timeBits(occurred)), 7)
	old = streamindex.AppendString(old, "ticket.updated")
	if got, ok := idStored(old); !ok || !got.Equal(occurred) {
		t.Errorf("idStored(a value without one) = %v, %v; want %v", got, ok, occurred)
	}
	if _, ok := idStored([]byte{1, 2}); ok {
		t.Error("idStored(a short value) ok")
	}
}

// TestSeen: an id is seen for its tenant only, within the window; a check
// catches the index up with the stream before it answers.
func TestSeen(t *testing.T) {
	t.Parallel()
	s := start(t)
	ix := s.open(t, Config{Dir: t.TempDir()})
	base := time.Now().UTC()
	a := s.publish(t, "ten_a", base, "ticket.created", "ticket.updated")
	ctx := context.Background()
	// No Sync: with the reach now, Seen itself must catch up.
	now := time.Now()
	got, err := ix.Seen(ctx, "ten_a", []string{a[0].ID, "evt_unknown", a[1].ID}, now.Add(-time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]bool{true, false, true}, got); diff != "" {
		t.Errorf("Seen(ten_a) (-want +got):\n%s", diff)
	}
	got, err = ix.Seen(ctx, "ten_b", []string{a[0].ID}, now.Add(-time.Hour), now)
	if err != nil || got[0] {
		t.Errorf("Seen(ten_b, ten_a's id) = %v, %v; want false", got, err)
	}
	later := time.Now().Add(time.Minute)
	got, err = ix.Seen(ctx, "ten_a", []string{a[0].ID}, later, now)
	if err != nil || got[0] {
		t.Errorf("Seen with the window begun after it was stored = %v, %v; want false", got, err)
	}
	if err := ix.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ix.Seen(ctx, "ten_a", []string{a[0].ID}, now.Add(-time.Hour), time.Now().Add(time.Hour)); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Seen after Close = %v, want ErrUnavailable", err)
	}
}

// TestStoredBytes: each tenant's bytes are the sizes of its events as
// stored; they are forgotten with retention.
func TestStoredBytes(t *testing.T) {
	t.Parallel()
	s := start(t)
	clock := newClock(time.Now())
	ix := s.open(t, Config{Dir: t.TempDir(), Now: clock.Now, RetentionEvery: time.Hour})
	ctx := context.Background()
	want := map[string]int64{}
	for i, tenant := range []string{"ten_a", "ten_a", "ten_b"} {
		e := events.Event{ID: events.NewID(), Type: "ticket.updated", TenantID: tenant, OccurredAt: time.Now().UTC(), Data: []byte(`{"n":` + string(rune('0'+i)) + `}`)}
		if err := s.pub.PublishEvents(ctx, true, e); err != nil {
			t.Fatal(err)
		}
		m := e.Msg(true)
		// The publisher stamps every event with a traceparent of a fixed
		// size (a fresh one without tracing): the store holds it too.
		var off *tracing.Tracer
		off.Stamp(ctx, m.Header)
		want[tenant] += storedSize(&streamindex.Msg{Subject: m.Subject, Header: nats.Header(m.Header), Data: m.Data})
	}
	if err := ix.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"ten_a", "ten_b", "ten_c"} {
		if got, err := ix.StoredBytes(ctx, tenant); err != nil || got != want[tenant] {
			t.Errorf("StoredBytes(%s) = %d, %v; want %d", tenant, got, err, want[tenant])
		}
	}
	clock.Set(clock.Now().Add(15 * 24 * time.Hour))
	if _, err := ix.store.Expire(); err != nil {
		t.Fatal(err)
	}
	if got, err := ix.StoredBytes(ctx, "ten_a"); err != nil || got != 0 {
		t.Errorf("StoredBytes(ten_a) after retention = %d, %v; want 0", got, err)
	}
	noBytesKeys(t, ix)
}

// TestStoredBytesAfterAFailedBatch: a batch that was not committed is
// applied again, and its bytes count once; apply reads the bytes it last
// wrote only once their batch is committed.
func TestStoredBytesAfterAFailedBatch(t *testing.T) {
	t.Parallel()
	c := newBenchCorpus()
	ix := openBenchIndex(t)
	msgs := make([]streamindex.Msg, 3)
	var want int64
	for i := range msgs {
		c.msg(&msgs[i], i)
		want += storedSize(&msgs[i])
	}
	commit := func(msgs []streamindex.Msg, fail error) error {
		return ix.store.Commit(msgs[len(msgs)-1].Seq, uint64(len(msgs)), func(b *pebble.Batch) error {
			if err := ix.apply(b, msgs); err != nil {
				return err
			}
			return fail
		})
	}
	if err := commit(msgs[:1], nil); err != nil {
		t.Fatal(err)
	}
	failed := errors.New("the store failed")
	if err := commit(msgs[1:], failed); !errors.Is(err, failed) {
		t.Fatalf("commit = %v, want %v", err, failed)
	}
	if err := commit(msgs[1:], nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ix.readStoredBytes(c.tenant); err != nil || got != want {
		t.Errorf("stored bytes = %d, %v; want %d", got, err, want)
	}
	// Without what it wrote (as after a restart), apply reads the store.
	var next streamindex.Msg
	c.msg(&next, len(msgs))
	want += storedSize(&next)
	if err := commit([]streamindex.Msg{next}, nil); err != nil {
		t.Fatal(err)
	}
	clear(ix.written)
	c.msg(&next, len(msgs)+1)
	want += storedSize(&next)
	if err := commit([]streamindex.Msg{next}, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := ix.readStoredBytes(c.tenant); err != nil || got != want {
		t.Errorf("stored bytes = %d, %v; want %d", got, err, want)
	}
	// Every hour's bytes are found by retention, however they were written.
	if _, err := ix.expire(c.stored(len(msgs) + 2).Add(2 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	noBytesKeys(t, ix)
}

// noBytesKeys fails t if ix holds a bytes or an hour key.
func noBytesKeys(t *testing.T, ix *Index) {
	t.Helper()
	it, err := ix.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		if k := it.Key()[0]; k == kindBytes || k == kindHour {
			t.Errorf("key %q left after retention", it.Key())
		}
	}
}
