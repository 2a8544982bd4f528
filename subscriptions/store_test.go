package subscriptions

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
)

// startJetStream runs an embedded JetStream server for one test.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	_, js := natstest.Start(t, natstest.Options{}).Connect(t)
	return js
}

func openStore(t *testing.T, js jetstream.JetStream) *Store {
	t.Helper()
	st, err := Open(context.Background(), js, Config{}, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(st.Close)
	return st
}

// twoReplicas opens two stores on one JetStream, as two webhookd would,
// and creates a tenant through the first.
func twoReplicas(t *testing.T) (a, b *Store, ten Tenant) {
	t.Helper()
	js := startJetStream(t)
	a, b = openStore(t, js), openStore(t, js)
	ten, _, _, err := a.CreateTenant(context.Background(), TenantInput{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	return a, b, ten
}

// waitLimit bounds a wait for another replica's watch: only a watch that
// stopped would take as long.
const waitLimit = 30 * time.Second

func TestStoreAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := startJetStream(t)
	a, b := openStore(t, js), openStore(t, js)

	ten, key, _, err := a.CreateTenant(ctx, TenantInput{Name: "acme"})
	if err != nil {
		t.Fatalf("CreateTenant: %v", err)
	}
	if got, _, ok := a.Index().Authenticate(string(key)); !ok || got != ten.ID {
		t.Fatalf("Authenticate on the writing replica = %q, %v; want %q, true", got, ok, ten.ID)
	}
	poll.Until(t, waitLimit, "key on replica b", func() bool { _, _, ok := b.Index().Authenticate(string(key)); return ok })

	sub, err := a.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.*"}})
	if err != nil {
		t.Fatalf("CreateSubscription: %v", err)
	}
	poll.Until(t, waitLimit, "subscription on replica b", func() bool { return len(b.Index().Match(nil, ten.ID, "ticket.updated")) == 1 })
	if got := b.Index().Match(nil, ten.ID, "board.updated"); len(got) != 0 {
		t.Errorf("Match(board.updated) = %d subscriptions, want 0", len(got))
	}
	if got := b.Index().Match(nil, "ten_other", "ticket.updated"); len(got) != 0 {
		t.Errorf("Match for another tenant = %d subscriptions, want 0", len(got))
	}

	stale := func(rev uint64) bool { return rev == sub.Revision+100 }
	if _, err := a.UpdateSubscription(ctx, ten.ID, sub.ID, stale, func(*Subscription) error { return nil }); !errors.Is(err, ErrConflict) {
		t.Errorf("UpdateSubscription with a stale revision = %v, want ErrConflict", err)
	}

	if err := b.DeleteSubscription(ctx, ten.ID, sub.ID); err != nil {
		t.Fatalf("DeleteSubscription: %v", err)
	}
	if _, ok := b.Index().Subscription(ten.ID, sub.ID); ok {
		t.Error("deleted subscription still in the deleting replica's index")
	}
	poll.Until(t, waitLimit, "delete on replica a", func() bool { _, ok := a.Index().Subscription(ten.ID, sub.ID); return !ok })

	second, k, err := a.CreateKey(ctx, ten.ID)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	poll.Until(t, waitLimit, "second key on replica b", func() bool { _, _, ok := b.Index().Authenticate(string(second)); return ok })
	if err := b.RevokeKey(ctx, ten.ID, k.ID); err != nil {
		t.Fatalf("RevokeKey: %v", err)
	}
	if _, _, ok := b.Index().Authenticate(string(second)); ok {
		t.Error("revoked key still authenticates on the revoking replica")
	}
	poll.Until(t, waitLimit, "revocation on replica a", func() bool { _, _, ok := a.Index().Authenticate(string(second)); return !ok })
	if _, _, ok := a.Index().Authenticate(string(key)); !ok {
		t.Error("first key stopped working after revoking the second")
	}
	if err := b.RevokeKey(ctx, "ten_other", k.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("RevokeKey of another tenant's key = %v, want ErrNotFound", err)
	}
}

func TestMatchPatterns(t *testing.T) {
	x := newIndex()
	subs := []*Subscription{
		{ID: "sub_1", TenantID: "t", EventTypes: []string{"ticket.updated"}, Revision: 1},
		{ID: "sub_2", TenantID: "t", EventTypes: []string{"ticket.*", "ticket.updated"}, Revision: 2},
		{ID: "sub_3", TenantID: "t", EventTypes: []string{"*"}, Revision: 3},
		{ID: "sub_4", TenantID: "t", EventTypes: []string{"service_catalog.*"}, Revision: 4},
		{ID: "sub_5", TenantID: "t", EventTypes: []string{"*", "ticket.*", "ticket.updated", "ticket.updated"}, Revision: 5},
	}
	for _, s := range subs {
		x.putSub(s, false)
	}
	tests := []struct {
		typ  string
		want int
	}{
		{"ticket.updated", 4},
		{"ticket.created", 3},
		{"board.updated", 2},
		{"service_catalog.item.created", 3},
		{"webhook.test", 0},
	}
	for _, tt := range tests {
		got := x.Match(nil, "t", tt.typ)
		if len(got) != tt.want {
			t.Errorf("Match(%q) = %d subscriptions, want %d", tt.typ, len(got), tt.want)
		}
		seen := map[string]bool{}
		for _, s := range got {
			if seen[s.ID] {
				t.Errorf("Match(%q) has %s twice", tt.typ, s.ID)
			}
			seen[s.ID] = true
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	x := newIndex()
	for i := range 200 {
		types := []string{"board.updated"}
		if i%10 == 0 {
			types = []string{"ticket.*"}
		}
		x.putSub(&Subscription{ID: NewSubscriptionID(), TenantID: "t", EventTypes: types, Revision: uint64(i + 1)}, false)
	}
	dst := make([]*Subscription, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		dst = x.Match(dst[:0], "t", "ticket.updated")
	}
	if len(dst) != 20 {
		b.Fatalf("Match = %d, want 20", len(dst))
	}
}

// BenchmarkMatchWildcards: a tenant with thousands of subscriptions to
// "*" and the event's family costs the fan-out in proportion to them.
func BenchmarkMatchWildcards(b *testing.B) {
	x := newIndex()
	for i := range 5000 {
		types := []string{"*"}
		if i%2 == 0 {
			types = []string{"ticket.*", "*"}
		}
		x.putSub(&Subscription{ID: NewSubscriptionID(), TenantID: "t", EventTypes: types, Revision: uint64(i + 1)}, false)
	}
	dst := make([]*Subscription, 0, 5000)
	for b.Loop() {
		dst = x.Match(dst[:0], "t", "ticket.updated")
	}
	if len(dst) != 5000 {
		b.Fatalf("Match = %d, want 5000", len(dst))
	}
}

// TestIndexForgetsDeletedKeys: once the watch has passed a deletion, the
// index keeps nothing of the deleted key, so its memory follows the live
// objects, not every one ever deleted.
func TestIndexForgetsDeletedKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := startJetStream(t)
	st := openStore(t, js)
	ten, _, _, err := st.CreateTenant(ctx, TenantInput{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for range n {
		sub, err := st.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.*"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.DeleteSubscription(ctx, ten.ID, sub.ID); err != nil {
			t.Fatal(err)
		}
		key, k, err := st.CreateKey(ctx, ten.ID)
		if err != nil || key == "" {
			t.Fatal(err)
		}
		if err := st.RevokeKey(ctx, ten.ID, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	x := st.Index()
	// Live: the tenant and its first key.
	poll.Until(t, waitLimit, "the index to forget deleted keys", func() bool {
		x.mu.RLock()
		defer x.mu.RUnlock()
		return len(x.revs) == 2
	})
}

// TestReadThroughOnIndexMiss: a replica whose index has not seen another
// replica's writes (its watch stopped here, so it never will) still
// authenticates the new key, finds the new tenant and reads the new and the
// changed subscription, from the buckets; a wrong secret for a key it does
// not hold is still refused.
func TestReadThroughOnIndexMiss(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := startJetStream(t)
	writer := openStore(t, js)
	lagging := openStore(t, js)
	lagging.Close() // its index sees nothing from now on

	ten, key, _, err := writer.CreateTenant(ctx, TenantInput{Name: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, ok, err := lagging.Authenticate(ctx, string(key)); err != nil || !ok || got != ten.ID {
		t.Errorf("Authenticate on the lagging replica = %q, %v, %v; want %q", got, ok, err, ten.ID)
	}
	forged := string(key[:len(key)-1]) + "A"
	if forged == string(key) {
		forged = string(key[:len(key)-1]) + "B"
	}
	if _, _, ok, err := lagging.Authenticate(ctx, forged); ok || err != nil {
		t.Errorf("Authenticate(wrong secret) = %v, %v; want refused", ok, err)
	}
	if got, err := lagging.LoadTenant(ctx, ten.ID); err != nil || got.Name != "acme" {
		t.Errorf("LoadTenant on the lagging replica = %+v, %v", got, err)
	}
	sub, err := writer.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.*"}})
	if err != nil {
		t.Fatal(err)
	}
	desc := "changed"
	if _, err := writer.UpdateSubscription(ctx, ten.ID, sub.ID, nil, PatchInput{Description: &desc}.Apply); err != nil {
		t.Fatal(err)
	}
	got, err := lagging.CurrentSubscription(ctx, ten.ID, sub.ID)
	if err != nil || got.Description != "changed" {
		t.Errorf("CurrentSubscription on the lagging replica = %+v, %v; want the changed subscription", got, err)
	}
	if err := writer.DeleteSubscription(ctx, ten.ID, sub.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := lagging.CurrentSubscription(ctx, ten.ID, sub.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("CurrentSubscription of a deleted subscription = %v, want ErrNotFound", err)
	}
}
