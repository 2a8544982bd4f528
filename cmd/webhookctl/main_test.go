package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/syncbuf"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/signature"
	"github.com/onestack/webhooks/testenv"
)

// ctl runs webhookctl against a stack; every exchange is checked against
// the stack's OpenAPI document.
type ctl struct {
	t      *testing.T
	env    *testenv.Env
	apiKey string
	waits  []time.Duration
}

// startCtl starts a stack and a receiver for its webhooks, and returns a
// ctl against the stack.
func startCtl(t *testing.T) (*ctl, *testenv.Receiver) {
	t.Helper()
	rc := testenv.NewReceiver()
	t.Cleanup(rc.Close)
	return &ctl{t: t, env: testenv.Start(t, testenv.Options{})}, rc
}

func (c *ctl) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	e := &env{url: c.env.URL(), apiKey: c.apiKey, adminToken: c.env.AdminToken, stdout: &out, stderr: &errOut,
		httpClient: c.env.HTTPClient(), sleep: func(_ context.Context, d time.Duration) error { c.waits = append(c.waits, d); return nil }}
	code = runWith(context.Background(), e, args)
	return out.String(), errOut.String(), code
}

// json runs a command with --json, wants exit 0 and decodes stdout.
func (c *ctl) json(v any, args ...string) {
	c.t.Helper()
	out, errOut, code := c.run(append(args, "--json")...)
	if code != 0 {
		c.t.Fatalf("webhookctl %s = exit %d: %s%s", strings.Join(args, " "), code, errOut, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("webhookctl %s --json: %v in %q", strings.Join(args, " "), err, out)
	}
}

func TestEveryCommandAgainstTheStack(t *testing.T) {
	t.Parallel()
	c, rc := startCtl(t)
	stack := c.env

	// Operator: tenants and keys.
	var ten struct {
		ID, Name  string
		RateLimit int
		APIKey    struct{ ID, Key string }
	}
	c.json(&ten, "tenants", "create", "--name", "acme")
	if !strings.HasPrefix(ten.ID, "ten_") || !strings.HasPrefix(ten.APIKey.Key, "sk_") || ten.RateLimit != 100 {
		t.Fatalf("tenants create = %+v", ten)
	}
	var tenants struct{ Data []struct{ ID string } }
	c.json(&tenants, "tenants", "list", "--all")
	if len(tenants.Data) != 1 || tenants.Data[0].ID != ten.ID {
		t.Errorf("tenants list = %+v", tenants)
	}
	var got struct{ ID, Name string }
	c.json(&got, "tenants", "get", ten.ID)
	if got.Name != "acme" {
		t.Errorf("tenants get = %+v", got)
	}
	var updated struct{ RateLimit int }
	c.json(&updated, "tenants", "update", ten.ID, "--rate-limit", "500")
	if updated.RateLimit != 500 {
		t.Errorf("tenants update = %+v", updated)
	}
	var key struct{ ID, Key string }
	c.json(&key, "keys", "create", ten.ID)
	var keys struct{ Data []struct{ ID string } }
	c.json(&keys, "keys", "list", ten.ID)
	if len(keys.Data) != 2 {
		t.Fatalf("keys list = %+v, want 2 keys", keys)
	}
	c.json(&struct{}{}, "keys", "revoke", ten.ID, key.ID)
	c.json(&keys, "keys", "list", ten.ID)
	if len(keys.Data) != 1 || keys.Data[0].ID != ten.APIKey.ID {
		t.Errorf("keys list after revoking = %+v", keys)
	}
	var link struct{ URL, ExpiresAt string }
	c.json(&link, "tenants", "portal-link", ten.ID)
	if !strings.HasPrefix(link.URL, stack.URL()+"/portal/login?token=") {
		t.Errorf("portal-link = %+v", link)
	}

	// Tenant: catalog, subscriptions.
	c.apiKey = ten.APIKey.Key
	var types struct{ Data []struct{ Type string } }
	c.json(&types, "event-types", "list")
	if len(types.Data) < 10 {
		t.Errorf("event-types list = %d types", len(types.Data))
	}
	var sub struct {
		ID, Secret string
		Metadata   map[string]string
		Active     bool
	}
	c.json(&sub, "subscriptions", "create", "--url", rc.URL()+"/h", "--types", "ticket.*", "--metadata", "team=ops", "--description", "cli")
	if !strings.HasPrefix(sub.Secret, "whsec_") || sub.Metadata["team"] != "ops" || !sub.Active {
		t.Fatalf("subscriptions create = %+v", sub)
	}
	if err := rc.SetSecrets(sub.Secret); err != nil {
		t.Fatal(err)
	}
	var subs struct{ Data []struct{ ID string } }
	c.json(&subs, "subs", "list")
	if len(subs.Data) != 1 || subs.Data[0].ID != sub.ID {
		t.Errorf("subscriptions list = %+v", subs)
	}
	c.json(&sub, "subscriptions", "update", sub.ID, "--active=false", "--description", "paused from the cli")
	if sub.Active {
		t.Errorf("update --active=false left it active")
	}
	c.json(&sub, "subscriptions", "update", sub.ID, "--active=true")
	c.json(&sub, "subscriptions", "get", sub.ID)
	if !sub.Active {
		t.Errorf("get after --active=true = %+v", sub)
	}
	var secret, rotated struct{ Secret string }
	c.json(&secret, "subscriptions", "secret", sub.ID)
	c.json(&rotated, "subscriptions", "rotate-secret", sub.ID)
	if secret.Secret != sub.Secret || rotated.Secret == "" || rotated.Secret == secret.Secret {
		t.Errorf("secret %q, rotated %q, created with %q", secret.Secret, rotated.Secret, sub.Secret)
	}
	rc.SetSecrets(rotated.Secret)
	var test struct{ EventID string }
	c.json(&test, "subscriptions", "test", sub.ID)
	if !strings.HasPrefix(test.EventID, "evt_") {
		t.Errorf("test = %+v", test)
	}

	// Events: one, then a file of 150 in two requests.
	var one struct{ ID string }
	c.json(&one, "events", "publish", "--type", "ticket.updated", "--data", `{"ticketId":"T-1"}`, "--id", "cli-1")
	if one.ID != "cli-1" {
		t.Errorf("events publish = %+v", one)
	}
	file := filepath.Join(t.TempDir(), "events.jsonl")
	var lines []string
	for i := range 150 {
		lines = append(lines, fmt.Sprintf(`{"type":"ticket.created","data":{"n":%d}}`, i))
	}
	os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600)
	var many struct{ IDs []string }
	c.json(&many, "events", "publish", "--file", file)
	if len(many.IDs) != 150 {
		t.Errorf("events publish --file = %d ids, want 150", len(many.IDs))
	}
	lines[120] = `{"type":"ticket.nope","data":{}}`
	os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600)
	if _, errOut, code := c.run("events", "publish", "--file", file); code != exitFailed || !strings.Contains(errOut, "events[120].type") || !strings.Contains(errOut, "published 100 of 150") {
		t.Errorf("a file with a bad event 120 = exit %d, %q; want 1 naming events[120].type after 100 published", code, errOut)
	}

	// Deliveries: wait for them, read one, retry it.
	// The test event, one event, 150, and the first batch of 100 of the
	// file that failed in its second.
	if n := len(rc.WaitFor(252, 30*time.Second)); n < 252 {
		t.Fatalf("receiver got %d webhooks, want 252", n)
	}
	var dl struct {
		Data []struct {
			ID, Status string
			Attempts   []json.RawMessage
		}
	}
	// Each check is six requests (pages of 50) against the tenant's 500 a
	// minute: spaced, so that a log a few seconds behind on a loaded
	// machine does not spend the budget and end the test with a 429.
	poll.WithinEvery(30*time.Second, 500*time.Millisecond, func() bool {
		dl.Data = nil
		c.json(&dl, "deliveries", "list", sub.ID, "--status", "succeeded", "--all")
		return len(dl.Data) >= 252
	})
	if len(dl.Data) < 252 {
		t.Fatalf("deliveries list --all = %d succeeded, want 252", len(dl.Data))
	}
	var d struct {
		ID, Status string
		Attempts   []json.RawMessage
	}
	c.json(&d, "deliveries", "get", dl.Data[0].ID)
	if d.ID != dl.Data[0].ID || len(d.Attempts) != 1 {
		t.Errorf("deliveries get = %+v", d)
	}
	c.json(&d, "deliveries", "retry", d.ID)
	var replay struct{ Replayed int }
	c.json(&replay, "replay", sub.ID, "--since", "1h")
	if replay.Replayed != 251 {
		t.Errorf("replay = %d, want every retained ticket event (251)", replay.Replayed)
	}

	// Tables for people.
	out, _, code := c.run("subscriptions", "list")
	if code != 0 || !strings.Contains(out, "ID") || !strings.Contains(out, sub.ID) || !strings.Contains(out, "active") {
		t.Errorf("subscriptions list (table) = %d %q", code, out)
	}
	out, _, _ = c.run("deliveries", "get", d.ID)
	if !strings.Contains(out, "HTTP 204") {
		t.Errorf("deliveries get (table) lacks the attempt's result: %q", out)
	}

	// Exit codes.
	c.json(&struct{}{}, "subscriptions", "delete", sub.ID)
	for _, tt := range []struct {
		args []string
		key  string
		code int
	}{
		{[]string{"subscriptions", "get", sub.ID}, ten.APIKey.Key, exitNotFound},
		{[]string{"subscriptions", "get"}, ten.APIKey.Key, exitUsage},
		{[]string{"nope", "list"}, ten.APIKey.Key, exitUsage},
		{[]string{"subscriptions", "list", "--bogus"}, ten.APIKey.Key, exitUsage},
		{[]string{"subscriptions", "list"}, "", exitAuth},
		{[]string{"subscriptions", "list"}, "sk_wrong", exitAuth},
		{[]string{"subscriptions", "create", "--url", "ftp://x", "--types", "ticket.*"}, ten.APIKey.Key, exitFailed},
	} {
		c.apiKey = tt.key
		if _, errOut, code := c.run(tt.args...); code != tt.code {
			t.Errorf("webhookctl %s = exit %d (%s), want %d", strings.Join(tt.args, " "), code, errOut, tt.code)
		}
	}
	c.apiKey = ten.APIKey.Key
	// Revoking the tenant revokes its keys.
	var revoked struct{ RevokedKeys []string }
	c.json(&revoked, "tenants", "revoke", ten.ID)
	if len(revoked.RevokedKeys) != 1 {
		t.Errorf("tenants revoke = %+v", revoked)
	}
	if _, _, code := c.run("subscriptions", "list"); code != exitAuth {
		t.Errorf("after tenants revoke: exit %d, want %d", code, exitAuth)
	}
}

// TestRateLimitedAndUnavailable: past the budget webhookctl waits
// Retry-After between its tries and exits 5; an unreachable server is 6.
func TestRateLimitedAndUnavailable(t *testing.T) {
	t.Parallel()
	// Counted in memory with the clock held still, as the API's exact
	// counts are tested: through NATS a count not answered within its
	// timeout is taken locally (failing open), and a window may turn
	// between two requests; either let the second one through.
	at := time.Now()
	stack := testenv.Start(t, testenv.Options{Server: func(c *server.Config) {
		c.Clock = func() time.Time { return at }
		c.RateLimiter = "local"
	}})
	ten, err := stack.CreateTenant("tiny", 1)
	if err != nil {
		t.Fatal(err)
	}
	c := &ctl{t: t, env: stack, apiKey: ten.APIKey}
	if _, errOut, code := c.run("subscriptions", "list"); code != 0 {
		t.Fatalf("first request = exit %d %s", code, errOut)
	}
	_, errOut, code := c.run("subscriptions", "list")
	if code != exitRateLimited || !strings.Contains(errOut, "RATE_LIMIT_EXCEEDED") {
		t.Errorf("past the budget = exit %d %q, want %d", code, errOut, exitRateLimited)
	}
	if len(c.waits) != 3 || c.waits[0] < time.Second || c.waits[0] > time.Minute {
		t.Errorf("waits = %v, want 3 waits of Retry-After", c.waits)
	}
	var out bytes.Buffer
	e := &env{url: "http://127.0.0.1:1", apiKey: ten.APIKey, stdout: &out, stderr: &out, sleep: func(context.Context, time.Duration) error { return nil }}
	if code := runWith(context.Background(), e, []string{"subscriptions", "list"}); code != exitUnavailable {
		t.Errorf("unreachable server = exit %d (%s), want %d", code, out.String(), exitUnavailable)
	}
}

// hit is a webhook the local app behind listen received.
type hit struct {
	header http.Header
	body   []byte
}

// listening is a listen command running against a stack of its own,
// forwarding to a local app.
type listening struct {
	stack          *testenv.Env
	ten            testenv.Tenant
	subID          string   // the subscription listen registered
	hits           chan hit // what the app received
	stdout, stderr syncbuf.Buffer
	exit           chan int // listen's exit code, once it returns
	stop           context.CancelFunc
}

// startListen starts a stack, a tenant, an app answering status and
// listen forwarding to the app's path with args after its own flags, and
// waits for listen to say it is ready.
func startListen(t *testing.T, status int, path string, args ...string) *listening {
	t.Helper()
	l := &listening{stack: testenv.Start(t, testenv.Options{}), hits: make(chan hit, 10), exit: make(chan int, 1)}
	var err error
	if l.ten, err = l.stack.CreateTenant("listener", 0); err != nil {
		t.Fatal(err)
	}
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		b.ReadFrom(r.Body)
		l.hits <- hit{r.Header.Clone(), b.Bytes()}
		w.WriteHeader(status)
	}))
	t.Cleanup(app.Close)
	var ctx context.Context
	ctx, l.stop = context.WithCancel(context.Background())
	t.Cleanup(l.stop)
	e := &env{url: l.stack.URL(), apiKey: l.ten.APIKey, stdout: &l.stdout, stderr: &l.stderr, httpClient: l.stack.HTTPClient(), json: true}
	go func() {
		l.exit <- runWith(ctx, e, append([]string{"listen", "--forward-to", app.URL + path}, args...))
	}()
	if !poll.Within(30*time.Second, func() bool { return strings.Contains(l.stderr.String(), "Ready") }) {
		l.stop()
		t.Fatalf("listen never got ready: %s", l.stderr.String())
	}
	out := l.stderr.String()
	l.subID = strings.Fields(out[strings.Index(out, "Subscription ")+len("Subscription "):])[0]
	return l
}

// TestListen runs listen against the stack: it registers a subscription,
// receives a webhook, verifies its signature, forwards it with its
// headers to the local app, answers with the app's status, and removes
// the subscription when stopped.
func TestListen(t *testing.T) {
	t.Parallel()
	l := startListen(t, http.StatusAccepted, "/hook", "--types", "ticket.*")
	stack, ten, subID, hits, exit, stop := l.stack, l.ten, l.subID, l.hits, l.exit, l.stop
	stdout, stderr := &l.stdout, &l.stderr
	secret, err := stack.Do("GET", "/api/subscriptions/"+subID+"/secret", ten.APIKey, nil)
	if err != nil || secret.Status != 200 {
		t.Fatalf("the listener's subscription %s: %v %d", subID, err, secret.Status)
	}
	var s struct{ Secret string }
	secret.JSON(&s)
	id, err := stack.Publish(ten, "ticket.updated", map[string]any{"ticketId": "T-9"})
	if err != nil {
		t.Fatal(err)
	}
	h, ok := poll.ReceiveWithin(30*time.Second, hits)
	if !ok {
		stop()
		t.Fatalf("nothing forwarded; listen said: %s %s", stdout.String(), stderr.String())
	}
	sec, _ := signature.ParseSecret(s.Secret)
	if err := (signature.Verifier{Secrets: []signature.Secret{sec}}).VerifyHeaders(h.header.Get, h.body); err != nil || h.header.Get("webhook-id") != id {
		t.Errorf("forwarded webhook: id %q (want %q), signature check %v", h.header.Get("webhook-id"), id, err)
	}
	poll.Within(30*time.Second, func() bool { return strings.Contains(stdout.String(), id) })
	var line received
	if err := json.Unmarshal([]byte(strings.SplitN(stdout.String(), "\n", 2)[0]), &line); err != nil || line.ID != id || !line.Verified || line.ForwardStatus != 202 || line.Type != "ticket.updated" {
		t.Errorf("printed %q (%v), want the verified webhook %s forwarded with 202", stdout.String(), err, id)
	}
	// The server recorded the app's answer as the attempt's status.
	var r *testenv.Response
	if !poll.Within(30*time.Second, func() bool {
		r, _ = stack.Do("GET", "/api/subscriptions/"+subID+"/deliveries", ten.APIKey, nil)
		return strings.Contains(string(r.Body), `"statusCode":202`)
	}) {
		t.Errorf("deliveries never showed the app's 202: %s", r.Body)
	}
	stop()
	if code := poll.Receive(t, 30*time.Second, "listen stopped", exit); code != 0 {
		t.Errorf("listen exit = %d: %s", code, stderr.String())
	}
	if r, _ := stack.Do("GET", "/api/subscriptions/"+subID, ten.APIKey, nil); r.Status != 404 {
		t.Errorf("after Ctrl-C the listener's subscription = %d, want 404 (removed)", r.Status)
	}
}
