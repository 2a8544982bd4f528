package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/signature"
)

// TestSettingsEventsRecoveryAndLimits drives the subscription settings,
// events list/get, recover, jobs get, limits and the operator's event-type
// commands against the stack.
func TestSettingsEventsRecoveryAndLimits(t *testing.T) {
	t.Parallel()
	c, rc := startCtl(t)
	var ten struct {
		ID     string
		APIKey struct{ Key string }
	}
	// A budget the polls below cannot spend.
	c.json(&ten, "tenants", "create", "--name", "acme", "--rate-limit", "100000")
	c.apiKey = ten.APIKey.Key

	// Filter, custom headers, FIFO and pace at create.
	var sub struct {
		ID, Secret, Ordering string
		Filter               *string
		HeaderNames          []string
		RateLimit            *float64
	}
	c.json(&sub, "subscriptions", "create", "--url", rc.URL()+"/h", "--types", "ticket.*",
		"--filter", `data.priority == "high"`, "--header", "X-Team=ops", "--header", "X-Env=test", "--fifo", "--pace", "50")
	if sub.Filter == nil || *sub.Filter != `data.priority == "high"` || sub.Ordering != "fifo" || sub.RateLimit == nil || *sub.RateLimit != 50 {
		t.Fatalf("subscriptions create with settings = %+v", sub)
	}
	if diff := cmp.Diff([]string{"X-Env", "X-Team"}, sub.HeaderNames); diff != "" {
		t.Errorf("headerNames (-want +got):\n%s", diff)
	}
	rc.SetSecrets(sub.Secret)
	out, _, _ := c.run("subscriptions", "get", sub.ID)
	for _, want := range []string{`data.priority == "high"`, "X-Env, X-Team (values write-only)", "fifo", "50/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("subscriptions get (table) lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ops") {
		t.Errorf("subscriptions get shows a header value:\n%s", out)
	}
	// A filter that does not compile is refused naming the field.
	if _, errOut, code := c.run("subscriptions", "update", sub.ID, "--filter", "data.priority =="); code != exitFailed || !strings.Contains(errOut, "filter") {
		t.Errorf("update with a bad filter = exit %d %q, want 1 naming filter", code, errOut)
	}

	// Only high-priority tickets are delivered, with the custom headers.
	var low, high struct{ ID string }
	c.json(&low, "events", "publish", "--type", "ticket.updated", "--data", `{"priority":"low"}`)
	c.json(&high, "events", "publish", "--type", "ticket.updated", "--data", `{"priority":"high"}`)
	got := rc.WaitFor(1, 30*time.Second)
	if len(got) != 1 || got[0].Header.Get("webhook-id") != high.ID || got[0].Header.Get("X-Team") != "ops" {
		t.Fatalf("receiver got %d webhooks (first %+v), want the high one with X-Team: ops", len(got), got)
	}

	// Events: listed by type and read with their deliveries.
	var events struct{ Data []struct{ ID, Type string } }
	c.json(&events, "events", "list", "--type", "ticket.updated", "--since", "1h")
	if len(events.Data) != 2 || events.Data[0].ID != high.ID || events.Data[1].ID != low.ID {
		t.Errorf("events list --type ticket.updated = %+v, want %s then %s", events.Data, high.ID, low.ID)
	}
	c.json(&events, "events", "list", "--type", "ticket.created")
	if len(events.Data) != 0 {
		t.Errorf("events list --type ticket.created = %+v, want none", events.Data)
	}
	var ev struct {
		ID         string
		Data       map[string]string
		Deliveries []struct{ SubscriptionID, Status string }
	}
	poll.Within(30*time.Second, func() bool {
		c.json(&ev, "events", "get", high.ID)
		return len(ev.Deliveries) == 1 && ev.Deliveries[0].Status == "succeeded"
	})
	if ev.Data["priority"] != "high" || len(ev.Deliveries) != 1 || ev.Deliveries[0].SubscriptionID != sub.ID || ev.Deliveries[0].Status != "succeeded" {
		t.Errorf("events get = %+v", ev)
	}
	if _, _, code := c.run("events", "get", "evt_nope"); code != exitNotFound {
		t.Errorf("events get evt_nope = exit %d, want %d", code, exitNotFound)
	}

	// The endpoint fails: recover resends the failed delivery once.
	c.json(&sub, "subscriptions", "update", sub.ID, "--filter", "", "--no-headers", "--ordering", "none", "--pace", "0")
	if sub.Filter != nil || len(sub.HeaderNames) != 0 || sub.Ordering != "none" || sub.RateLimit != nil {
		t.Errorf("update removing the settings = %+v", sub)
	}
	rc.Respond(func(int, *http.Request) int { return http.StatusInternalServerError })
	var failing struct{ ID string }
	c.json(&failing, "events", "publish", "--type", "ticket.created", "--data", `{}`)
	var failed struct{ Data []struct{ ID string } }
	if !poll.Within(60*time.Second, func() bool {
		c.json(&failed, "deliveries", "list", sub.ID, "--status", "failed")
		return len(failed.Data) == 1
	}) {
		t.Fatalf("no failed delivery: %+v", failed)
	}
	rc.Respond(nil)
	before := len(rc.Received())
	var rec struct{ Recovered int }
	c.json(&rec, "recover", sub.ID, "--since", "1h")
	if rec.Recovered != 1 {
		t.Errorf("recover = %+v, want 1", rec)
	}
	if got := rc.WaitFor(before+1, 30*time.Second); len(got) < before+1 || got[len(got)-1].Header.Get("webhook-id") != failing.ID {
		t.Errorf("after recover the receiver got %d webhooks, want %s again", len(got), failing.ID)
	}
	// A replay of more than a page runs as a job, followed to its end,
	// then listed and read.
	var jl struct{ Data []struct{ ID string } }
	c.json(&jl, "jobs", "list")
	if len(jl.Data) != 0 {
		t.Errorf("jobs list before any job = %+v", jl)
	}
	batch := make([]string, 120)
	for i := range batch {
		batch[i] = `{"type":"ticket.created","data":{}}`
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(file, []byte(strings.Join(batch, "\n")), 0o600)
	c.json(&struct{}{}, "events", "publish", "--file", file)
	var replayed struct {
		Replayed int
		JobID    string
		Status   string
	}
	c.json(&replayed, "replay", sub.ID, "--since", "1h")
	if replayed.JobID == "" || replayed.Status != "done" || replayed.Replayed < 120 {
		t.Errorf("replay of more than a page = %+v, want a job done", replayed)
	}
	c.json(&jl, "jobs", "list")
	if len(jl.Data) != 1 || jl.Data[0].ID != replayed.JobID {
		t.Errorf("jobs list = %+v, want %s", jl, replayed.JobID)
	}
	var jg struct{ ID, Kind, Status string }
	c.json(&jg, "jobs", "get", replayed.JobID)
	if jg.Kind != "replay" || jg.Status != "done" {
		t.Errorf("jobs get = %+v", jg)
	}
	if out, _, code := c.run("jobs", "list"); code != 0 || !strings.Contains(out, replayed.JobID) || !strings.Contains(out, "replay") {
		t.Errorf("jobs list (table) = exit %d %q", code, out)
	}
	if _, errOut, code := c.run("jobs", "get", "job_01JEXAMPLE0000000000000000"); code != exitNotFound {
		t.Errorf("jobs get of an unknown job = exit %d %q, want %d", code, errOut, exitNotFound)
	}

	// Limits and usage.
	var lim struct{ Limits, Usage map[string]int64 }
	c.json(&lim, "limits")
	if lim.Limits["subscriptions"] <= 0 || lim.Usage["subscriptions"] != 1 || lim.Limits["requestsPerMinute"] != 100000 {
		t.Errorf("limits = %+v", lim)
	}
	c.json(&struct{}{}, "tenants", "update", ten.ID, "--limit", "subscriptions=1")
	if out, _, code := c.run("tenants", "get", ten.ID); code != 0 || !strings.Contains(out, "subscriptions=1") {
		t.Errorf("tenants get (table) = exit %d %q, want its limits", code, out)
	}
	c.json(&lim, "limits")
	if lim.Limits["subscriptions"] != 1 {
		t.Errorf("limits after tenants update --limit subscriptions=1 = %+v", lim)
	}
	if out, _, code := c.run("limits"); code != 0 || !strings.Contains(out, "subscriptions") || !strings.Contains(out, "USED") {
		t.Errorf("limits (table) = exit %d %q", code, out)
	}
	if _, errOut, code := c.run("subscriptions", "create", "--url", rc.URL()+"/2", "--types", "*"); code != exitFailed || !strings.Contains(errOut, "QUOTA_EXCEEDED") {
		t.Errorf("a subscription past the limit = exit %d %q", code, errOut)
	}

	// The operator's catalog.
	schema := filepath.Join(t.TempDir(), "schema.json")
	os.WriteFile(schema, []byte(`{"type":"object","required":["invoiceId"]}`), 0o600)
	var et struct {
		Type, Description string
		Deprecated        bool
		Schema            map[string]any
	}
	c.json(&et, "event-types", "create", "invoice.paid", "--description", "an invoice was paid", "--schema", schema)
	if et.Type != "invoice.paid" || et.Schema["type"] != "object" {
		t.Errorf("event-types create = %+v", et)
	}
	c.json(&et, "event-types", "update", "invoice.paid", "--description", "paid in full")
	c.json(&et, "event-types", "get", "invoice.paid")
	if et.Description != "paid in full" {
		t.Errorf("event-types get after update = %+v", et)
	}
	c.json(&et, "event-types", "deprecate", "invoice.paid")
	if !et.Deprecated {
		t.Errorf("event-types deprecate = %+v", et)
	}
	c.json(&et, "event-types", "update", "invoice.paid", "--undeprecate")
	if et.Deprecated {
		t.Errorf("event-types update --undeprecate = %+v", et)
	}
}

// TestAuthAndTraceparentFlags: the authentication and traceparent flags
// send the spec's shapes (checked on a server that records them), secrets
// read from files or the environment, and the answer's non-secret parts
// are shown.
func TestAuthAndTraceparentFlags(t *testing.T) {
	var bodies []map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		bodies = append(bodies, m)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"id":"sub_1","url":"https://example.com/h","eventTypes":["*"],"active":true,"signatureScheme":"v1",
			"sendTraceparent":false,"failingSince":"2026-12-01T10:00:00Z",
			"auth":{"type":"mtls","subject":"CN=hooks.example.com","certificateExpiresAt":"2027-06-01T00:00:00Z"}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	for name, body := range map[string]string{"cert.pem": "CERT PEM", "key.pem": "KEY PEM", "ca.pem": "CA PEM"} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)
	}
	run := func(getenv func(string) string, args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		e := &env{url: srv.URL, apiKey: "sk_test", stdout: &out, stderr: &errOut, getenv: getenv}
		code := runWith(context.Background(), e, args)
		return out.String(), errOut.String(), code
	}
	env := func(k string) string {
		if k == "WEBHOOKS_OAUTH2_CLIENT_SECRET" {
			return "from-env"
		}
		return ""
	}

	tests := []struct {
		name string
		args []string
		want map[string]any // the body's auth and sendTraceparent
	}{
		{"oauth2 at create", []string{"subscriptions", "create", "--url", "https://example.com/h", "--types", "*",
			"--oauth2-token-url", "https://idp.example.com/token", "--oauth2-client-id", "cid", "--oauth2-client-secret", "s3cret",
			"--oauth2-scope", "hooks:write", "--oauth2-scope", "hooks:read", "--oauth2-audience", "aud", "--no-traceparent"},
			map[string]any{"auth": map[string]any{"type": "oauth2", "tokenUrl": "https://idp.example.com/token", "clientId": "cid",
				"clientSecret": "s3cret", "scopes": []any{"hooks:write", "hooks:read"}, "audience": "aud"}, "sendTraceparent": false}},
		{"oauth2 secret from the environment", []string{"subscriptions", "update", "sub_1",
			"--oauth2-token-url", "https://idp.example.com/token", "--oauth2-client-id", "cid"},
			map[string]any{"auth": map[string]any{"type": "oauth2", "tokenUrl": "https://idp.example.com/token", "clientId": "cid", "clientSecret": "from-env"}}},
		{"mtls from files", []string{"subscriptions", "update", "sub_1", "--mtls-cert", filepath.Join(dir, "cert.pem"),
			"--mtls-key", filepath.Join(dir, "key.pem"), "--mtls-ca", filepath.Join(dir, "ca.pem"), "--traceparent=true"},
			map[string]any{"auth": map[string]any{"type": "mtls", "certificate": "CERT PEM", "privateKey": "KEY PEM", "caBundle": "CA PEM"}, "sendTraceparent": true}},
		{"no auth", []string{"subscriptions", "update", "sub_1", "--no-auth"}, map[string]any{"auth": nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bodies = nil
			out, errOut, code := run(env, tt.args...)
			if code != 0 || len(bodies) != 1 {
				t.Fatalf("exit %d, %d requests: %s", code, len(bodies), errOut)
			}
			got := map[string]any{}
			for k, v := range bodies[0] {
				if k == "auth" || k == "sendTraceparent" {
					got[k] = v
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("sent (-want +got):\n%s", diff)
			}
			for _, want := range []string{"mutual TLS, certificate CN=hooks.example.com, expires 2027-06-01", "traceparent:", "off", "failing since:"} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	for _, args := range [][]string{
		{"subscriptions", "update", "sub_1", "--no-auth", "--mtls-cert", "x"},
		{"subscriptions", "update", "sub_1", "--mtls-cert", "x"},
		{"subscriptions", "update", "sub_1", "--mtls-cert", "x", "--mtls-key", "y", "--oauth2-client-id", "c"},
		{"subscriptions", "create", "--url", "https://x", "--types", "*", "--oauth2-client-id", "c"},
		{"subscriptions", "update", "sub_1", "--no-headers", "--header", "A=b"},
	} {
		bodies = nil
		if _, errOut, code := run(nil, args...); code != exitUsage || len(bodies) != 0 {
			t.Errorf("webhookctl %s = exit %d (%s) after %d requests, want %d before any", strings.Join(args, " "), code, errOut, len(bodies), exitUsage)
		}
	}
}

// TestListenVerifiesV1a: listen with --signature-scheme v1a learns the
// subscription's public key and verifies Ed25519 signatures; the app gets
// webhooks that verify with that key.
func TestListenVerifiesV1a(t *testing.T) {
	t.Parallel()
	l := startListen(t, http.StatusOK, "", "--types", "ticket.*", "--signature-scheme", "v1a")
	stack, ten, subID, hits, exit, stop := l.stack, l.ten, l.subID, l.hits, l.exit, l.stop
	stdout, stderr := &l.stdout, &l.stderr
	r, _ := stack.Do("GET", "/api/subscriptions/"+subID+"/secret", ten.APIKey, nil)
	var key struct{ PublicKey string }
	r.JSON(&key)
	pk, err := signature.ParsePublicKey(key.PublicKey)
	if err != nil {
		t.Fatalf("the listener's subscription key %s: %v", r.Body, err)
	}
	id, err := stack.Publish(ten, "ticket.updated", map[string]any{"ticketId": "T-1"})
	if err != nil {
		t.Fatal(err)
	}
	h, ok := poll.ReceiveWithin(30*time.Second, hits)
	if !ok {
		t.Fatalf("nothing forwarded; listen said: %s %s", stdout.String(), stderr.String())
	}
	if !strings.HasPrefix(h.header.Get("webhook-signature"), "v1a,") {
		t.Errorf("forwarded signature %q, want v1a", h.header.Get("webhook-signature"))
	}
	if err := (signature.Verifier{PublicKeys: []signature.PublicKey{pk}}).VerifyHeaders(h.header.Get, h.body); err != nil || h.header.Get("webhook-id") != id {
		t.Errorf("forwarded webhook %q (want %q): %v", h.header.Get("webhook-id"), id, err)
	}
	poll.Within(30*time.Second, func() bool { return strings.Contains(stdout.String(), id) })
	var line received
	if err := json.Unmarshal([]byte(strings.SplitN(stdout.String(), "\n", 2)[0]), &line); err != nil || line.ID != id || !line.Verified {
		t.Errorf("printed %q (%v), want %s verified", stdout.String(), err, id)
	}
	stop()
	if code := poll.Receive(t, 30*time.Second, "listen stopped", exit); code != 0 {
		t.Errorf("listen exit = %d: %s", code, stderr.String())
	}
}
