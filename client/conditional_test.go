package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestIfMatchAndETag: SubscriptionWithETag returns the ETag of the version
// read (the cached one after a 304), UpdateSubscriptionIfMatch sends it as
// If-Match and a mismatch comes back as a 412 Error; an empty etag sends
// no If-Match.
func TestIfMatchAndETag(t *testing.T) {
	s := &script{answers: []func(http.ResponseWriter){
		status(200, "ETag", `"r1"`),
		status(304, "ETag", `"r1"`),
		status(200),
		status(412),
		status(200),
	}}
	c, _ := newTest(t, s)
	ctx := context.Background()
	for i := range 2 {
		if _, etag, err := c.SubscriptionWithETag(ctx, "sub_1"); err != nil || etag != `"r1"` {
			t.Fatalf("read %d: etag %q, %v", i, etag, err)
		}
	}
	if _, err := c.UpdateSubscriptionIfMatch(ctx, "sub_1", `"r1"`, SubscriptionPatch{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.UpdateSubscriptionIfMatch(ctx, "sub_1", `"r0"`, SubscriptionPatch{})
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusPreconditionFailed {
		t.Fatalf("a stale If-Match = %v, want a 412 Error", err)
	}
	if _, err := c.UpdateSubscription(ctx, "sub_1", SubscriptionPatch{}); err != nil {
		t.Fatal(err)
	}
	var ifMatch []string
	for _, r := range s.got[2:] {
		ifMatch = append(ifMatch, r.Header.Get("If-Match"))
	}
	if diff := cmp.Diff([]string{`"r1"`, `"r0"`, ""}, ifMatch); diff != "" {
		t.Errorf("If-Match sent (-want +got):\n%s", diff)
	}
}

// TestCreateOnceSendsItsKey: the Idempotency-Key goes with every try, and
// a create with a key is sent again after a 503 (the server answers a
// repeat with the first answer).
func TestCreateOnceSendsItsKey(t *testing.T) {
	s := &script{answers: []func(http.ResponseWriter){status(503), status(201)}}
	c, _ := newTest(t, s)
	if _, err := c.CreateSubscriptionOnce(context.Background(), "k-1", NewSubscription{URL: "https://example.com/h"}); err != nil {
		t.Fatal(err)
	}
	if len(s.got) != 2 {
		t.Fatalf("%d tries, want 2", len(s.got))
	}
	for i, r := range s.got {
		if got := r.Header.Get("Idempotency-Key"); got != "k-1" {
			t.Errorf("try %d: Idempotency-Key %q", i, got)
		}
	}
}

// TestErrorFieldsAndRetryAfter: an Error carries the answer's Retry-After
// and its details.fields, in order.
func TestErrorFieldsAndRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid","code":"VALIDATION_FAILED","details":{"fields":[
			{"field":"url","reason":"must be https"},{"field":"eventTypes[1]","reason":"unknown"}]}}`))
	}))
	defer srv.Close()
	c, err := New(Config{BaseURL: srv.URL, APIKey: "k", MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateSubscription(context.Background(), NewSubscription{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	want := []FieldError{{Field: "url", Reason: "must be https"}, {Field: "eventTypes[1]", Reason: "unknown"}}
	if diff := cmp.Diff(want, e.Fields()); diff != "" {
		t.Errorf("Fields (-want +got):\n%s", diff)
	}
	if e.RetryAfter != 7 {
		t.Errorf("RetryAfter = %d, want 7", e.RetryAfter)
	}
	if n := len((&Error{Message: "no details"}).Fields()); n != 0 {
		t.Errorf("an error without details has %d fields", n)
	}
}

// TestSharedCacheKeepsScopesApart: two clients sharing a Cache revalidate
// only their own answers: the second scope's first read carries no
// If-None-Match, its second carries its own ETag.
func TestSharedCacheKeepsScopesApart(t *testing.T) {
	s := &script{answers: []func(http.ResponseWriter){
		status(200, "ETag", `"a"`), status(200, "ETag", `"b"`), status(304, "ETag", `"b"`),
	}}
	srv := httptest.NewServer(s)
	defer srv.Close()
	cache := NewCache(16)
	ctx := context.Background()
	for i, scope := range []string{"ten_a", "ten_b", "ten_b"} {
		c, err := New(Config{BaseURL: srv.URL, APIKey: "k", Cache: cache, CacheScope: scope, MaxAttempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		if types, err := c.EventTypes(ctx); err != nil || len(types) != 1 {
			t.Fatalf("read %d: %v, %v", i, types, err)
		}
	}
	var sent []string
	for _, r := range s.got {
		sent = append(sent, r.Header.Get("If-None-Match"))
	}
	if diff := cmp.Diff([]string{"", "", `"b"`}, sent); diff != "" {
		t.Errorf("If-None-Match sent (-want +got):\n%s", diff)
	}
	if n := cache.len(); n != 2 {
		t.Errorf("shared cache holds %d answers, want 2", n)
	}
}

func TestBudgetKnown(t *testing.T) {
	if (Budget{}).Known() || !(Budget{Limit: 100}).Known() {
		t.Error("Known: want false for the zero Budget, true once a limit is reported")
	}
}

// TestRangeSendsOnlyTheTimesGiven: a replay and a recovery send since and
// until only when they are not zero (the API then says since is
// required, rather than refusing year 1 as past the retention), in UTC.
func TestRangeSendsOnlyTheTimesGiven(t *testing.T) {
	c, sent := answering(t, http.StatusAccepted, `{"replayed":3}`)
	ctx := context.Background()
	since := time.Date(2026, 1, 31, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	if s, err := c.StartReplay(ctx, "sub_1", since, time.Time{}); err != nil || s.Count != 3 {
		t.Fatalf("StartReplay = %+v, %v", s, err)
	}
	if _, err := c.StartReplay(ctx, "sub_1", time.Time{}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recover(ctx, "sub_1", Recovery{Until: since, Status: "skipped"}); err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"since": "2026-01-31T08:30:00Z"},
		{},
		{"until": "2026-01-31T08:30:00Z", "status": "skipped"},
	}
	if diff := cmp.Diff(want, *sent); diff != "" {
		t.Errorf("bodies sent (-want +got):\n%s", diff)
	}
}
