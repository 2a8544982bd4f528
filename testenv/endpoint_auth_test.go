package testenv_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/testpki"
	"github.com/onestack/webhooks/testenv"
)

// oauthServer is a client-credentials token endpoint: it checks the
// client's id, secret, scope and audience, issues tokens that expire, and
// answers whether a token is valid, as a gateway in front of a receiver
// would.
type oauthServer struct {
	*httptest.Server
	secrets []string // accepted client secrets

	mu       sync.Mutex
	lifetime time.Duration
	failNext int // answer 500 to this many more requests
	requests int
	issued   map[string]time.Time // token → expiry
	order    []string
}

func newOAuthServer(t *testing.T, secrets ...string) *oauthServer {
	s := &oauthServer{secrets: secrets, lifetime: time.Hour, issued: map[string]time.Time{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *oauthServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	w.Header().Set("Content-Type", "application/json")
	if s.failNext > 0 {
		s.failNext--
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	known := false
	for _, s := range s.secrets {
		known = known || secret == s
	}
	if id != "webhooks-client" || !known || r.PostFormValue("grant_type") != "client_credentials" ||
		r.PostFormValue("scope") != "events.write tickets.read" || r.PostFormValue("audience") != "https://receiver.example" {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"invalid_client"}`)
		return
	}
	tok := fmt.Sprintf("tok-%d", len(s.order)+1)
	s.issued[tok] = time.Now().Add(s.lifetime)
	s.order = append(s.order, tok)
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": int(s.lifetime / time.Second)})
}

// valid reports whether an Authorization header holds a token issued and
// not yet expired.
func (s *oauthServer) valid(authorization string) bool {
	tok, ok := strings.CutPrefix(authorization, "Bearer ")
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, issued := s.issued[tok]
	return ok && issued && time.Now().Before(exp)
}

func (s *oauthServer) revoke(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.issued, tok)
}

func (s *oauthServer) stats() (requests int, tokens []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, append([]string(nil), s.order...)
}

func (s *oauthServer) set(f func(*oauthServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

type authSubJSON struct {
	ID   string
	Auth *struct {
		Type, TokenURL, ClientID, Audience, Subject, Issuer string
		Scopes                                              []string
		CertificateExpiresAt                                *time.Time
		HasCABundle                                         *bool
	}
}

// bearer is the Authorization header of a received webhook.
func bearer(r testenv.Received) string { return r.Header.Get("Authorization") }

// TestOAuth2Delivery: a receiver behind an OAuth2 gateway. The token is
// fetched once and reused across deliveries, fetched again after a 401
// (the attempt sent again at once, with the new token) and after it
// expires; a token endpoint that fails makes a failed attempt with a
// clear error, delivered on the schedule once it recovers; the secret is
// never shown, and PATCH auth null removes the authentication.
func TestOAuth2Delivery(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	idp := newOAuthServer(t, "s3cret-one", "s3cret-two")
	rc := receiver(t)
	rc.Respond(func(_ int, r *http.Request) int {
		if idp.valid(r.Header.Get("Authorization")) {
			return http.StatusNoContent
		}
		return http.StatusUnauthorized
	})
	auth := map[string]any{"type": "oauth2", "tokenUrl": idp.URL + "/oauth/token", "clientId": "webhooks-client",
		"clientSecret": "s3cret-one", "scopes": []string{"events.write", "tickets.read"}, "audience": "https://receiver.example"}
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.*"}, "auth": auth})
	var sub authSubJSON
	r.JSON(&sub)
	if r.Status != 201 || sub.Auth == nil || sub.Auth.Type != "oauth2" || sub.Auth.TokenURL != auth["tokenUrl"] || sub.Auth.ClientID != "webhooks-client" ||
		strings.Join(sub.Auth.Scopes, " ") != "events.write tickets.read" || sub.Auth.Audience != "https://receiver.example" {
		t.Fatalf("create with oauth2 = %d %s", r.Status, r.Body)
	}
	noSecret := func(what string, body []byte) {
		t.Helper()
		if strings.Contains(string(body), "s3cret") || strings.Contains(string(body), "clientSecret") {
			t.Errorf("%s shows the client secret: %s", what, body)
		}
	}
	noSecret("create", r.Body)
	r, _ = env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	noSecret("GET", r.Body)
	r, _ = env.Do("GET", "/api/subscriptions", ten.APIKey, nil)
	noSecret("list", r.Body)
	if !strings.Contains(string(r.Body), `"type":"oauth2"`) {
		t.Errorf("list = %s, want the auth's type", r.Body)
	}

	// Cached: three deliveries, one token.
	for range 3 {
		publish(t, env, ten, "ticket.updated")
	}
	got := rc.WaitFor(3, 30*time.Second)
	if len(got) != 3 {
		t.Fatalf("received %d webhooks, want 3", len(got))
	}
	for i, w := range got {
		if bearer(w) != "Bearer tok-1" {
			t.Errorf("webhook %d Authorization = %q, want Bearer tok-1", i, bearer(w))
		}
	}
	if n, _ := idp.stats(); n != 1 {
		t.Errorf("token requests after 3 deliveries = %d, want 1", n)
	}

	// Refused: the gateway revoked tok-1; the 401 drops it and the same
	// attempt is sent again with tok-2.
	idp.revoke("tok-1")
	publish(t, env, ten, "ticket.updated")
	got = rc.WaitFor(5, 30*time.Second)
	if len(got) != 5 || bearer(got[3]) != "Bearer tok-1" || bearer(got[4]) != "Bearer tok-2" {
		t.Fatalf("after revocation got %d requests (%v), want tok-1 refused then tok-2", len(got), bearers(got))
	}
	dls := pollDeliveries(t, env, ten, sub.ID, "?status=succeeded", func(d []deliveryJSON) bool { return len(d) == 4 })
	if n := len(dls[0].Attempts); n != 1 {
		t.Errorf("the delivery refused once has %d attempts, want 1 (the retry with a fresh token is within it)", n)
	}

	// Expired: tokens now live 2 s; once tok-3 has expired, the next
	// delivery fetches tok-4 before sending, with no 401 on the way.
	idp.set(func(s *oauthServer) { s.lifetime = 2 * time.Second })
	idp.revoke("tok-2")
	publish(t, env, ten, "ticket.updated")
	got = rc.WaitFor(7, 30*time.Second)
	if len(got) != 7 || bearer(got[6]) != "Bearer tok-3" {
		t.Fatalf("got %v, want tok-2 refused then tok-3", bearers(got))
	}
	poll.Until(t, 30*time.Second, "tok-3 expired, and a second more", func() bool {
		return !idp.valid("Bearer tok-3") && time.Now().After(idp.expiry("tok-3").Add(time.Second))
	})
	publish(t, env, ten, "ticket.updated")
	got = rc.WaitFor(8, 30*time.Second)
	if len(got) != 8 || bearer(got[7]) != "Bearer tok-4" {
		t.Fatalf("after expiry got %v, want tok-4 sent without a 401", bearers(got))
	}

	// A failing token endpoint: a new client secret needs a new token, the
	// endpoint answers 500 to both ways of sending the credentials, and the
	// attempt fails without reaching the receiver; the next one is
	// delivered.
	idp.set(func(s *oauthServer) { s.failNext, s.lifetime = 2, time.Hour })
	auth["clientSecret"] = "s3cret-two"
	r, _ = env.Do("PATCH", "/api/subscriptions/"+sub.ID, ten.APIKey, map[string]any{"auth": auth})
	if r.Status != 200 {
		t.Fatalf("PATCH auth = %d %s", r.Status, r.Body)
	}
	noSecret("PATCH", r.Body)
	evt := publish(t, env, ten, "ticket.updated")
	dls = pollDeliveries(t, env, ten, sub.ID, "?status=succeeded", func(d []deliveryJSON) bool { return len(d) == 7 })
	var d deliveryJSON
	for _, x := range dls {
		if x.EventID == evt {
			d = x
		}
	}
	if len(d.Attempts) != 2 || d.Attempts[0].Error == nil || d.Attempts[0].StatusCode != nil {
		t.Fatalf("delivery through a failing token endpoint = %+v, want a failed attempt without status, then a success", d)
	}
	if e := *d.Attempts[0].Error; e != "oauth2 token: the token endpoint answered 500 (temporarily_unavailable)" {
		t.Errorf("attempt error = %q, want the token endpoint's 500", e)
	}
	got = rc.Received()
	if len(got) != 9 || bearer(got[8]) != "Bearer tok-5" {
		t.Errorf("after the token endpoint recovered got %v, want one more webhook with tok-5", bearers(got))
	}

	// Removed: no Authorization header any more.
	rc.Respond(nil)
	r, _ = env.Do("PATCH", "/api/subscriptions/"+sub.ID, ten.APIKey, map[string]any{"auth": nil})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"auth":null`) {
		t.Fatalf("PATCH auth null = %d %s", r.Status, r.Body)
	}
	r, _ = env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	if !strings.Contains(string(r.Body), `"auth":null`) {
		t.Errorf("GET after auth null = %s", r.Body)
	}
	publish(t, env, ten, "ticket.updated")
	got = rc.WaitFor(10, 30*time.Second)
	if len(got) != 10 || bearer(got[9]) != "" {
		t.Errorf("after auth null got %v, want a webhook without Authorization", bearers(got))
	}
}

func (s *oauthServer) expiry(tok string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[tok]
}

func bearers(got []testenv.Received) []string {
	out := make([]string, len(got))
	for i, w := range got {
		out[i] = bearer(w)
	}
	return out
}

// TestMTLSDelivery: a receiver that requires a client certificate issued
// by a private CA gets webhooks from a subscription with that certificate
// and the CA bundle; without them, or with a certificate of another CA,
// the attempt fails with a clear error. Answers show the certificate's
// subject and expiry, never the key.
func TestMTLSDelivery(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Schedule: []time.Duration{}})
	ca := testpki.NewCA(t, "Receiver Private CA")
	client := ca.Client(t, "webhooks.onestack", 48*time.Hour)
	stranger := testpki.NewCA(t, "Someone Else").Client(t, "intruder", time.Hour)
	server := ca.Server(t)
	rc := testenv.NewTLSReceiver(&tls.Config{Certificates: []tls.Certificate{server.TLS(t)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()})
	t.Cleanup(rc.Close)

	create := func(auth map[string]any) (*testenv.Response, authSubJSON) {
		t.Helper()
		body := map[string]any{"url": rc.URL(), "eventTypes": []string{"board.updated"}}
		if auth != nil {
			body["auth"] = auth
		}
		r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, body)
		var s authSubJSON
		r.JSON(&s)
		return r, s
	}
	r, good := create(map[string]any{"type": "mtls", "certificate": client.CertPEM, "privateKey": client.KeyPEM, "caBundle": ca.PEM})
	if r.Status != 201 || good.Auth == nil || good.Auth.Type != "mtls" || good.Auth.Subject != "CN=webhooks.onestack,O=One Stack tests" ||
		good.Auth.Issuer != "CN=Receiver Private CA" || good.Auth.CertificateExpiresAt == nil || !good.Auth.CertificateExpiresAt.Equal(client.Cert.NotAfter) ||
		good.Auth.HasCABundle == nil || !*good.Auth.HasCABundle {
		t.Fatalf("create with mtls = %d %s", r.Status, r.Body)
	}
	for _, path := range []string{"/api/subscriptions/" + good.ID, "/api/subscriptions"} {
		g, _ := env.Do("GET", path, ten.APIKey, nil)
		if strings.Contains(string(g.Body), "PRIVATE KEY") || strings.Contains(string(g.Body), "privateKey") || !strings.Contains(string(g.Body), `"certificateExpiresAt"`) {
			t.Errorf("GET %s = %s, want the expiry and no key", path, g.Body)
		}
	}
	if strings.Contains(string(r.Body), "PRIVATE KEY") {
		t.Errorf("create answer holds the key: %s", r.Body)
	}
	_, none := create(nil)
	_, wrong := create(map[string]any{"type": "mtls", "certificate": stranger.CertPEM, "privateKey": stranger.KeyPEM, "caBundle": ca.PEM})

	publish(t, env, ten, "board.updated")
	got := rc.WaitFor(1, 30*time.Second)
	if len(got) != 1 || got[0].ClientCert != "CN=webhooks.onestack,O=One Stack tests" {
		t.Fatalf("receiver got %d webhooks (%+v), want 1 from the client certificate", len(got), got)
	}
	for _, tt := range []struct {
		sub, want string
	}{
		{good.ID, ""},
		{none.ID, "TLS certificate error"}, // the private CA is not among the system's roots
		{wrong.ID, "TLS error: the endpoint refused the handshake (a client certificate it requires missing or not accepted)"},
	} {
		status := "failed"
		if tt.want == "" {
			status = "succeeded"
		}
		d := pollDeliveries(t, env, ten, tt.sub, "?status="+status, func(d []deliveryJSON) bool { return len(d) == 1 })[0]
		if len(d.Attempts) != 1 {
			t.Fatalf("delivery to %s = %+v, want one attempt", tt.sub, d)
		}
		if a := d.Attempts[0]; tt.want != "" && (a.Error == nil || *a.Error != tt.want || a.StatusCode != nil) {
			t.Errorf("attempt to %s: error %v status %v, want %q", tt.sub, deref(a.Error), a.StatusCode, tt.want)
		}
	}
	if n := rc.Count(); n != 1 {
		t.Errorf("receiver got %d requests, want 1 (the others never passed the handshake)", n)
	}

	// PATCH auth null removes it.
	r, _ = env.Do("PATCH", "/api/subscriptions/"+good.ID, ten.APIKey, map[string]any{"auth": nil})
	if r.Status != 200 || !strings.Contains(string(r.Body), `"auth":null`) {
		t.Errorf("PATCH auth null = %d %s", r.Status, r.Body)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestEndpointAuthRefusals: auth that cannot work is 400 VALIDATION_FAILED
// naming the field, on create and on update.
func TestEndpointAuthRefusals(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	rc := receiver(t)
	sub := subscribe(t, env, ten, rc, "ticket.*")
	ca := testpki.NewCA(t, "CA")
	one, two := ca.Client(t, "one", time.Hour), ca.Client(t, "two", time.Hour)
	oauth := map[string]any{"type": "oauth2", "tokenUrl": "https://idp.example.com/token", "clientId": "c", "clientSecret": "s"}
	with := func(base map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range base {
			out[kk] = vv
		}
		out[k] = v
		return out
	}
	mtls := map[string]any{"type": "mtls", "certificate": one.CertPEM, "privateKey": one.KeyPEM}
	tests := []struct {
		name  string
		auth  any
		field string
	}{
		{"unknown type", map[string]any{"type": "basic"}, "auth.type"},
		{"missing type", map[string]any{"clientId": "c"}, "auth.type"},
		{"bad certificate", with(mtls, "certificate", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"), "auth.certificate"},
		{"not PEM", with(mtls, "certificate", "hello"), "auth.certificate"},
		{"bad key", with(mtls, "privateKey", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "auth.privateKey"},
		{"mismatched key", with(mtls, "privateKey", two.KeyPEM), "auth.privateKey"},
		{"bad bundle", with(mtls, "caBundle", "nope"), "auth.caBundle"},
		{"missing secret", with(oauth, "clientSecret", ""), "auth.clientSecret"},
		{"token url with credentials", with(oauth, "tokenUrl", "https://u:p@idp.example.com/token"), "auth.tokenUrl"},
		{"mixed fields", with(oauth, "certificate", one.CertPEM), "auth.certificate"},
	}
	for _, tt := range tests {
		for _, req := range []struct{ method, path string }{{"POST", "/api/subscriptions"}, {"PATCH", "/api/subscriptions/" + sub.ID}} {
			body := map[string]any{"auth": tt.auth}
			if req.method == "POST" {
				body["url"], body["eventTypes"] = rc.URL(), []string{"*"}
			}
			r, _ := env.Do(req.method, req.path, ten.APIKey, body)
			if r.Status != 400 || !strings.Contains(string(r.Body), "VALIDATION_FAILED") || !strings.Contains(string(r.Body), `"`+tt.field+`"`) {
				t.Errorf("%s %s = %d %s; want 400 VALIDATION_FAILED on %s", tt.name, req.method, r.Status, r.Body, tt.field)
			}
			if strings.Contains(string(r.Body), "-----BEGIN") || strings.Contains(string(r.Body), "AAAA") {
				t.Errorf("%s %s: the answer quotes the key: %s", tt.name, req.method, r.Body)
			}
		}
	}
	// Strict: a token endpoint on a private address is refused like a url.
	strict, sten := setup(t, testenv.Options{Strict: true})
	r, _ := strict.Do("POST", "/api/subscriptions", sten.APIKey, map[string]any{"url": "https://example.com/h", "eventTypes": []string{"*"},
		"auth": with(oauth, "tokenUrl", "https://10.1.2.3/token")})
	if r.Status != 400 || !strings.Contains(string(r.Body), `"auth.tokenUrl"`) {
		t.Errorf("private token URL under the strict policy = %d %s; want 400 on auth.tokenUrl", r.Status, r.Body)
	}
}

// TestMTLSEmptySubject: a client certificate named only by its subject
// alternative name (a SPIFFE one, its subject empty) is accepted, and the
// answers show its subject, empty, as the API document requires.
func TestMTLSEmptySubject(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	ca := testpki.NewCA(t, "SPIFFE CA")
	svid := ca.SPIFFE(t, "spiffe://example.org/webhooks", time.Hour)
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": "https://example.com/h", "eventTypes": []string{"*"},
		"auth": map[string]any{"type": "mtls", "certificate": svid.CertPEM, "privateKey": svid.KeyPEM, "caBundle": ca.PEM}})
	var sub authSubJSON
	r.JSON(&sub)
	if r.Status != 201 || sub.Auth == nil || !strings.Contains(string(r.Body), `"subject":""`) || sub.Auth.Issuer != "CN=SPIFFE CA" {
		t.Fatalf("create with a SPIFFE certificate = %d %s", r.Status, r.Body)
	}
	g, _ := env.Do("GET", "/api/subscriptions/"+sub.ID, ten.APIKey, nil)
	if !strings.Contains(string(g.Body), `"subject":""`) {
		t.Errorf("GET = %s, want the empty subject shown", g.Body)
	}
}

// TestOAuth2RefusedAfterRefresh: an endpoint that refuses the fresh token
// it was sent again with, after a 401 to the cached one, does not see that
// token again: the next attempt fetches another rather than sending the
// refused one first and retrying.
func TestOAuth2RefusedAfterRefresh(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{Schedule: []time.Duration{}})
	idp := newOAuthServer(t, "s3cret")
	rc := receiver(t)
	rc.Respond(func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusNoContent
		}
		return http.StatusUnauthorized // from the second request on, every token is refused
	})
	auth := map[string]any{"type": "oauth2", "tokenUrl": idp.URL + "/oauth/token", "clientId": "webhooks-client",
		"clientSecret": "s3cret", "scopes": []string{"events.write", "tickets.read"}, "audience": "https://receiver.example"}
	r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": rc.URL(), "eventTypes": []string{"ticket.*"}, "auth": auth})
	var sub authSubJSON
	r.JSON(&sub)
	if r.Status != 201 {
		t.Fatalf("create = %d %s", r.Status, r.Body)
	}
	publish(t, env, ten, "ticket.updated")
	pollDeliveries(t, env, ten, sub.ID, "?status=succeeded", func(d []deliveryJSON) bool { return len(d) == 1 })
	// tok-1 cached, refused; tok-2 fetched, refused too.
	publish(t, env, ten, "ticket.updated")
	pollDeliveries(t, env, ten, sub.ID, "?status=failed", func(d []deliveryJSON) bool { return len(d) == 1 })
	// tok-2 was refused: this attempt fetches tok-3 and sends it alone.
	publish(t, env, ten, "ticket.updated")
	pollDeliveries(t, env, ten, sub.ID, "?status=failed", func(d []deliveryJSON) bool { return len(d) == 2 })
	want := []string{"Bearer tok-1", "Bearer tok-1", "Bearer tok-2", "Bearer tok-3"}
	if got := bearers(rc.Received()); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("the endpoint got %v, want %v", got, want)
	}
}

// TestEndpointAuthNullOptionals: optional auth fields given as null (as a
// client serialising an unset field may) are accepted as absent, and the
// API document says so (the contract check fails the test otherwise).
func TestEndpointAuthNullOptionals(t *testing.T) {
	t.Parallel()
	env, ten := setup(t, testenv.Options{})
	ca := testpki.NewCA(t, "CA")
	p := ca.Client(t, "svc", time.Hour)
	for _, auth := range []map[string]any{
		{"type": "oauth2", "tokenUrl": "https://idp.example.com/t", "clientId": "c", "clientSecret": "s", "scopes": nil, "audience": nil},
		{"type": "mtls", "certificate": p.CertPEM, "privateKey": p.KeyPEM, "caBundle": nil},
	} {
		r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": "https://example.com/h", "eventTypes": []string{"*"}, "auth": auth})
		if r.Status != 201 {
			t.Errorf("create with %s auth, optional fields null = %d %s", auth["type"], r.Status, r.Body)
		}
	}
}
