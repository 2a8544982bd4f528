package testenv_test

import (
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/signature"
	"github.com/onestack/webhooks/testenv"
)

// TestCrossTenantWalk calls every tenant route that takes an id with
// another tenant's id: each answers exactly as for an unknown id.
func TestCrossTenantWalk(t *testing.T) {
	t.Parallel()
	env, owner := setup(t, testenv.Options{})
	intruder, err := env.CreateTenant("intruder", 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	sub := subscribe(t, env, owner, rc, "ticket.*")
	routes := []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/subscriptions/%s", nil},
		{"PATCH", "/api/subscriptions/%s", map[string]any{"description": "mine now"}},
		{"DELETE", "/api/subscriptions/%s", nil},
		{"GET", "/api/subscriptions/%s/secret", nil},
		{"POST", "/api/subscriptions/%s/rotate-secret", nil},
		{"POST", "/api/subscriptions/%s/test", nil},
	}
	for _, rt := range routes {
		foreign, _ := env.Do(rt.method, strings.Replace(rt.path, "%s", sub.ID, 1), intruder.APIKey, rt.body)
		unknown, _ := env.Do(rt.method, strings.Replace(rt.path, "%s", "sub_01ZZZZZZZZZZZZZZZZZZZZZZZZ", 1), intruder.APIKey, rt.body)
		if foreign.Status != 404 || foreign.Status != unknown.Status || string(foreign.Body) != string(unknown.Body) {
			t.Errorf("%s %s with a foreign id = %d %s; with an unknown id = %d %s; want the same 404",
				rt.method, rt.path, foreign.Status, foreign.Body, unknown.Status, unknown.Body)
		}
	}
	r, _ := env.Do("POST", "/api/subscriptions/batch", intruder.APIKey, map[string]any{"ids": []string{sub.ID}})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"missing":["`+sub.ID+`"]`) || strings.Contains(string(r.Body), "example") {
		t.Errorf("batch with a foreign id = %d %s, want it listed as missing", r.Status, r.Body)
	}
	r, _ = env.Do("GET", "/api/subscriptions", intruder.APIKey, nil)
	if strings.Contains(string(r.Body), sub.ID) {
		t.Errorf("intruder's list shows the owner's subscription: %s", r.Body)
	}
	// Nothing the intruder did reached the owner's subscription.
	own, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, owner.APIKey, nil)
	secret, _ := env.Do("GET", "/api/subscriptions/"+sub.ID+"/secret", owner.APIKey, nil)
	if own.Status != 200 || strings.Contains(string(own.Body), "mine now") || !strings.Contains(string(secret.Body), sub.Secret) {
		t.Errorf("owner's subscription changed: %s %s", own.Body, secret.Body)
	}
	if n := rc.Count(); n != 0 {
		t.Errorf("intruder's test call reached the owner's endpoint %d times", n)
	}
}

// TestRotationSignsWithBothSecrets rotates a secret: the next webhook
// carries two signatures, each valid with its own secret alone.
func TestRotationSignsWithBothSecrets(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	r, _ := env.Do("POST", "/api/subscriptions/"+sub.ID+"/rotate-secret", ten.APIKey, nil)
	var rotated struct{ Secret string }
	r.JSON(&rotated)
	if r.Status != 200 || rotated.Secret == "" || rotated.Secret == sub.Secret {
		t.Fatalf("rotate = %d %s", r.Status, r.Body)
	}
	publish(t, env, ten, "ticket.updated")
	got := rc.WaitFor(1, 30*time.Second)
	if len(got) != 1 {
		t.Fatalf("got %d webhooks, want 1", len(got))
	}
	w := got[0]
	if n := len(strings.Fields(w.Signature)); n != 2 {
		t.Errorf("webhook-signature has %d entries, want 2: %q", n, w.Signature)
	}
	for name, s := range map[string]string{"old": sub.Secret, "new": rotated.Secret} {
		sec, err := signature.ParseSecret(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := (signature.Verifier{Secrets: []signature.Secret{sec}}).Verify(w.ID, w.Timestamp, w.Signature, w.Body); err != nil {
			t.Errorf("verify with the %s secret alone: %v", name, err)
		}
	}
	if r, _ := env.Do("GET", "/api/subscriptions/"+sub.ID+"/secret", ten.APIKey, nil); !strings.Contains(string(r.Body), rotated.Secret) {
		t.Errorf("GET secret after rotation = %s, want the new secret", r.Body)
	}
}

// TestHostnameResolvingToLoopbackNeverReached subscribes, with the default
// destination policy, a hostname that resolves to 127.0.0.1: the
// subscription is accepted (the name is not an address), but the dialler
// refuses the address and the receiver never gets a request.
func TestHostnameResolvingToLoopbackNeverReached(t *testing.T) {
	t.Parallel()
	host := loopbackName(t)
	env, ten := setup(t, testenv.Options{Server: func(c *server.Config) {
		c.Egress = egress.Policy{AllowHTTP: true} // plain http for the local receiver; no private destinations
	}})
	var hits atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) })}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	if r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": "http://127.0.0.1:" + port + "/", "eventTypes": []string{"*"}}); r.Status != 400 {
		t.Errorf("a literal loopback address = %d, want 400 at subscription time", r.Status)
	}
	if _, err := env.Subscribe(ten, "http://"+host+":"+port+"/hook", "ticket.*"); err != nil {
		t.Fatal(err)
	}
	publish(t, env, ten, "ticket.updated")
	// The attempts fail at dial time; wait until the log shows all three.
	poll.Until(t, 60*time.Second, "delivery to "+host+" given up", func() bool {
		m, _ := env.Do("GET", "/metrics", "", nil)
		if n := hits.Load(); n != 0 {
			t.Fatalf("receiver behind %s got %d requests, want 0", host, n)
		}
		return strings.Contains(string(m.Body), `webhooks_attempts_total{outcome="failed"} 1`)
	})
	if n := hits.Load(); n != 0 {
		t.Errorf("receiver behind %s got %d requests, want 0", host, n)
	}
}

// loopbackName returns a hostname (not localhost) that resolves only to
// loopback addresses, or skips.
func loopbackName(t *testing.T) string {
	t.Helper()
	h, _ := os.Hostname()
	for _, name := range []string{h, "localhost.localdomain", "ip6-localhost"} {
		if name == "" || (egress.Policy{}).CheckURL("https://"+name+"/") != nil {
			continue
		}
		addrs, err := net.LookupHost(name)
		if err != nil || len(addrs) == 0 {
			continue
		}
		ok := true
		for _, a := range addrs {
			if ip := net.ParseIP(a); ip == nil || !ip.IsLoopback() {
				ok = false
			}
		}
		if ok {
			return name
		}
	}
	t.Skip("no hostname other than localhost resolves to loopback on this machine")
	return ""
}
