package events

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"

	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/tracing"
)

// TestWatermillSeam publishes through both paths of Publisher (the typed
// PublishEvents and Watermill's Publish) and reads them back through the
// Watermill subscriber: UUIDs are event ids and payloads are envelopes.
func TestWatermillSeam(t *testing.T) {
	t.Parallel()
	nc, js := natstest.Start(t, natstest.Options{}).Connect(t)
	ctx := context.Background()
	if _, err := EnsureStream(ctx, js, StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	sub, err := NewSubscriber(nc, "seam", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, SubjectAll)
	if err != nil {
		t.Fatal(err)
	}

	pub := NewPublisher(js, PublisherConfig{})
	mk := func(typ string) Event {
		return Event{ID: NewID(), Type: typ, TenantID: "ten_1", OccurredAt: time.Now().UTC(), Data: []byte(`{"ticketId":"T-1"}`)}
	}
	typed, viaWatermill := mk("ticket.updated"), mk("ticket.created")
	if err := pub.PublishEvents(ctx, false, typed); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(Subject(viaWatermill.TenantID, viaWatermill.Type), NewMessage(viaWatermill)); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{typed.ID: typed.Type, viaWatermill.ID: viaWatermill.Type}
	for range 2 {
		m, ok := poll.ReceiveWithin(30*time.Second, msgs)
		if !ok {
			t.Fatalf("events never read through Watermill: missing %v", want)
		}
		e, err := Parse(m.Payload)
		if err != nil {
			t.Fatalf("payload: %v", err)
		}
		if m.UUID != e.ID || want[e.ID] != e.Type {
			t.Errorf("got UUID %q, event %s %s; want the UUID to be a published event's id", m.UUID, e.ID, e.Type)
		}
		delete(want, e.ID)
		m.Ack()
	}
}

func TestEventMarshalRoundTrip(t *testing.T) {
	e := Event{ID: "evt_1", Type: "ticket.updated", TenantID: "ten_1", OccurredAt: time.Date(2026, 11, 26, 10, 0, 0, 5, time.UTC), Data: []byte(` {"a":"\u00e9\n"} `)}
	got, err := Parse(e.Marshal())
	if err != nil {
		t.Fatalf("Parse(Marshal()) = %v", err)
	}
	if got.ID != e.ID || got.Type != e.Type || got.TenantID != e.TenantID || !got.OccurredAt.Equal(e.OccurredAt) || string(got.Data) != `{"a":"\u00e9\n"}` {
		t.Errorf("round trip = %+v", got)
	}
}

// FuzzParse feeds arbitrary bodies to the event decoder; a body it accepts
// and that validates must survive Marshal and Parse unchanged.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"id":"evt_1","type":"ticket.updated","tenantId":"ten_1","occurredAt":"2026-11-26T10:00:00Z","data":{"k":1}}`))
	f.Add([]byte(`{"id":"a\"b"}`))
	f.Add([]byte(`[]`))
	c := DefaultCatalog()
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := Parse(body)
		if err != nil || e.Validate(c) != nil {
			return
		}
		back, err := Parse(e.Marshal())
		if err != nil {
			t.Fatalf("Parse(Marshal(%q)) = %v", body, err)
		}
		if back.ID != e.ID || back.Type != e.Type || back.TenantID != e.TenantID || !back.OccurredAt.Equal(e.OccurredAt) {
			t.Fatalf("round trip of %q changed the envelope: %+v", body, back)
		}
	})
}

// TestPublishersStoreTraceContext: both publish paths store each event with
// a traceparent header, tracing off: the caller's context's (PublishEvents'
// ctx, a Watermill message's context), a producer's own traceparent
// metadata as it is, or else a fresh one of a trace of its own.
func TestPublishersStoreTraceContext(t *testing.T) {
	t.Parallel()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	ctx := context.Background()
	stream, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub := NewPublisher(js, PublisherConfig{})
	mk := func() Event {
		return Event{ID: NewID(), Type: "ticket.updated", TenantID: "ten_1", OccurredAt: time.Now().UTC(), Data: []byte(`{"ticketId":"T-1"}`)}
	}
	const (
		callers  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
		messages = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
		metadata = "00-11111111111111111111111111111111-2222222222222222-01"
	)
	withParent := func(v string) context.Context {
		sc, ok := tracing.Parse(v)
		if !ok {
			t.Fatalf("Parse(%q) failed", v)
		}
		return trace.ContextWithRemoteSpanContext(ctx, sc)
	}
	if err := pub.PublishEvents(withParent(callers), true, mk()); err != nil {
		t.Fatal(err)
	}
	m := NewMessage(mk())
	m.SetContext(withParent(messages))
	if err := pub.Publish(Subject("ten_1", "ticket.updated"), m); err != nil {
		t.Fatal(err)
	}
	m = NewMessage(mk())
	m.Metadata.Set(tracing.Header, metadata)
	if err := pub.Publish(Subject("ten_1", "ticket.updated"), m); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishEvents(ctx, true, mk(), mk()); err != nil {
		t.Fatal(err)
	}
	var stored []string
	for seq := uint64(1); seq <= 5; seq++ {
		raw, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("GetMsg(%d): %v", seq, err)
		}
		stored = append(stored, raw.Header.Get(tracing.Header))
	}
	for i, want := range []string{callers, messages, metadata} {
		if stored[i] != want {
			t.Errorf("event %d stored traceparent %q, want %q", i+1, stored[i], want)
		}
	}
	a, okA := tracing.Parse(stored[3])
	b, okB := tracing.Parse(stored[4])
	if !okA || !okB || a.TraceID() == b.TraceID() || a.IsSampled() {
		t.Errorf("events published without a context stored %q and %q; want two fresh unsampled traces", stored[3], stored[4])
	}
}

// TestPublishEndsAtItsTimeout: a publish nobody acknowledges ends at the
// publisher's Timeout, its bound, even with a far longer AckTimeout and a
// caller's context without a deadline. A core subscriber stands in for a
// stream that takes the message and never answers.
func TestPublishEndsAtItsTimeout(t *testing.T) {
	t.Parallel()
	nc, js := natstest.Start(t, natstest.Options{}).Connect(t)
	sub, err := nc.SubscribeSync(SubjectAll)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	pub := NewPublisher(js, PublisherConfig{AckTimeout: time.Hour, Timeout: 200 * time.Millisecond})
	e := Event{ID: NewID(), Type: "ticket.updated", TenantID: "ten_1", OccurredAt: time.Now().UTC(), Data: []byte(`{}`)}
	done := make(chan error, 1)
	go func() { done <- pub.PublishEvents(context.Background(), true, e) }()
	err, ok := poll.ReceiveWithin(30*time.Second, done)
	if !ok {
		t.Fatal("PublishEvents still waits past its 200 ms Timeout, on its hour-long AckTimeout")
	}
	if !errors.Is(err, ErrPublish) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("PublishEvents = %v, want ErrPublish and context.DeadlineExceeded", err)
	}
}

func TestEventMsg(t *testing.T) {
	e := Event{ID: "evt_1", Type: "ticket.updated", TenantID: "ten_1", OccurredAt: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), Data: []byte(`{"a":1}`)}
	for _, dedupe := range []bool{false, true} {
		m := e.Msg(dedupe)
		want := nats.Header{HeaderEventID: {"evt_1"}, HeaderWatermillUUID: {"evt_1"}}
		if dedupe {
			want[nats.MsgIdHdr] = []string{"ten_1:evt_1"}
		}
		if diff := cmp.Diff(want, m.Header); diff != "" {
			t.Errorf("Msg(%v) headers (-want +got):\n%s", dedupe, diff)
		}
		if m.Subject != "events.ten_1.ticket.updated" || string(m.Data) != string(e.Marshal()) {
			t.Errorf("Msg(%v) = %s %s", dedupe, m.Subject, m.Data)
		}
		// A header added to one value leaves the others as they were.
		m.Header.Add(HeaderEventID, "x")
		if got := m.Header.Get(HeaderWatermillUUID); got != "evt_1" {
			t.Errorf("after an Add to %s, %s = %q", HeaderEventID, HeaderWatermillUUID, got)
		}
	}
}

// TestPublishAcrossAReconnect: a publish made while its NATS server is
// down ends by its Timeout, failed (ErrPublish, which the API answers 503)
// and never hanging, when the server stays down; when the server comes
// back within the Timeout it either succeeds, and the event is stored,
// or fails as above, and a retry with the same id stores it once. Either
// way the answer never claims a publish the stream does not hold.
func TestPublishAcrossAReconnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srv := natstest.Start(t, natstest.Options{Dir: dir})
	port := srv.Addr().(*net.TCPAddr).Port
	_, js := srv.Connect(t, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	ctx := context.Background()
	stream, err := EnsureStream(ctx, js, StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		t.Helper()
		var n uint64
		poll.Until(t, 30*time.Second, "the events stream's info", func() bool {
			info, err := stream.Info(ctx)
			if err == nil {
				n = info.State.Msgs
			}
			return err == nil
		})
		return n
	}
	publish := func(pub *Publisher, e Event) <-chan error {
		done := make(chan error, 1)
		go func() { done <- pub.PublishEvents(ctx, true, e) }()
		return done
	}
	mk := func(id string) Event {
		return Event{ID: id, Type: "ticket.updated", TenantID: "ten_1", OccurredAt: time.Now().UTC(), Data: []byte(`{}`)}
	}

	srv.Shutdown()
	srv.WaitForShutdown()
	short := NewPublisher(js, PublisherConfig{AckTimeout: time.Hour, Timeout: 300 * time.Millisecond})
	err, ok := poll.ReceiveWithin(30*time.Second, publish(short, mk("evt_down")))
	if !ok {
		t.Fatal("PublishEvents with the server down still waits past its 300 ms Timeout")
	}
	if !errors.Is(err, ErrPublish) {
		t.Errorf("PublishEvents with the server down = %v, want ErrPublish", err)
	}

	pub := NewPublisher(js, PublisherConfig{AckTimeout: 2 * time.Second, Timeout: 20 * time.Second})
	done := publish(pub, mk("evt_back"))
	natstest.Start(t, natstest.Options{Dir: dir, Port: port})
	err, ok = poll.ReceiveWithin(30*time.Second, done)
	if !ok {
		t.Fatal("PublishEvents across the server's restart still waits past its 20 s Timeout")
	}
	// What the first publish of evt_down may have left in the client's
	// buffer reaches the stream on the reconnect: count evt_back alone.
	before := stored()
	if err == nil {
		// Stored: a retry is deduplicated, so the count does not change.
		if err := pub.PublishEvents(ctx, true, mk("evt_back")); err != nil {
			t.Fatalf("PublishEvents again after the reconnect = %v", err)
		}
		if after := stored(); after != before {
			t.Errorf("PublishEvents across the restart answered nil, yet its retry stored a message (%d then %d): it was not stored", before, after)
		}
		return
	}
	if !errors.Is(err, ErrPublish) {
		t.Errorf("PublishEvents across the restart = %v, want nil or ErrPublish", err)
	}
	for range 2 {
		if err := pub.PublishEvents(ctx, true, mk("evt_back")); err != nil {
			t.Fatalf("PublishEvents again after the reconnect = %v", err)
		}
	}
	if after := stored(); after > before+1 {
		t.Errorf("two retries of evt_back stored %d messages, want at most one", after-before)
	}
}

// ackedFuture is a PubAckFuture already acknowledged.
type ackedFuture struct {
	ok  chan *jetstream.PubAck
	msg *nats.Msg
}

func newAckedFuture(subject string) *ackedFuture {
	f := &ackedFuture{ok: make(chan *jetstream.PubAck, 1), msg: &nats.Msg{Subject: subject}}
	f.ack()
	return f
}

// ackedFutures is n futures, each acknowledged.
func ackedFutures(n int) []jetstream.PubAckFuture {
	var futures []jetstream.PubAckFuture
	for i := range n {
		futures = append(futures, newAckedFuture("events.ten_1.ticket.updated."+strconv.Itoa(i)))
	}
	return futures
}

// ack makes the acknowledgement ready, unless it is.
func (f *ackedFuture) ack() {
	select {
	case f.ok <- &jetstream.PubAck{Stream: StreamName}:
	default:
	}
}

func (f *ackedFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *ackedFuture) Err() <-chan error            { return nil }
func (f *ackedFuture) Msg() *nats.Msg               { return f.msg }

// TestAwaitEachCountsAcknowledgementsIn: a wait whose deadline has come
// (or whose context ended) as the acknowledgements arrived answers the
// events acknowledged as stored, not failed: the timer's case, ready at
// the same time, does not win by chance; only futures still without an
// acknowledgement are failed.
func TestAwaitEachCountsAcknowledgementsIn(t *testing.T) {
	futures := ackedFutures(20)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		deadline time.Time
	}{
		{"deadline passed", context.Background(), time.Now().Add(-time.Second)},
		{"context ended", ended, time.Now().Add(time.Hour)},
	} {
		for _, timers := range []*timerPool{nil, {}} {
			for _, f := range futures {
				f.(*ackedFuture).ack()
			}
			failed, err := awaitEach(tc.ctx, timers, time.Hour, tc.deadline, futures)
			if len(failed) != 0 || err != nil {
				t.Errorf("%s: awaitEach(20 acknowledged) = %d failed, %v; want none, nil", tc.name, len(failed), err)
			}
			// Drain what was left unread, for the next round.
			for _, f := range futures {
				select {
				case <-f.Ok():
				default:
				}
			}
		}
	}
	// A future never acknowledged is still failed, with the deadline's error.
	pending := &ackedFuture{ok: make(chan *jetstream.PubAck), msg: &nats.Msg{Subject: "events.ten_1.ticket.updated"}}
	failed, err := awaitEach(context.Background(), &timerPool{}, time.Hour, time.Now(), []jetstream.PubAckFuture{newAckedFuture("a"), pending})
	if len(failed) != 1 || failed[0] != pending.msg || !errors.Is(err, ErrPublish) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("awaitEach(one acknowledged, one not, deadline passed) = %v, %v; want the second, ErrPublish and DeadlineExceeded", failed, err)
	}
}

// AwaitAll, as awaitEach, answers a wait that ends with every
// acknowledgement already in as a success.
func TestAwaitAllCountsAcknowledgementsIn(t *testing.T) {
	futures := ackedFutures(20)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	for round := range 20 {
		for _, f := range futures {
			f.(*ackedFuture).ack()
		}
		if err := AwaitAll(ended, time.Hour, futures); err != nil {
			t.Fatalf("round %d: AwaitAll(20 acknowledged, context ended) = %v, want nil", round, err)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			default:
			}
		}
	}
	pending := &ackedFuture{ok: make(chan *jetstream.PubAck), msg: &nats.Msg{Subject: "events.ten_1.ticket.updated"}}
	if err := AwaitAll(ended, time.Hour, []jetstream.PubAckFuture{pending}); !errors.Is(err, ErrPublish) || !errors.Is(err, context.Canceled) {
		t.Errorf("AwaitAll(one never acknowledged, context ended) = %v, want ErrPublish and Canceled", err)
	}
}
