package endpointauth

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/internal/testpki"
)

// baseTransport is a delivery transport with the dial guard of p.
func baseTransport(p egress.Policy) *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second, Control: p.Control}
	return &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 5 * time.Second}
}

// tokenServer is a client-credentials token endpoint that checks the
// client's id, secret, scope and audience and counts its requests.
type tokenServer struct {
	*httptest.Server
	requests atomic.Int64
	issued   atomic.Int64
	status   atomic.Int64 // answer this status instead of a token, if set
	lifetime time.Duration
}

func newTokenServer(t *testing.T, lifetime time.Duration) *tokenServer {
	ts := &tokenServer{lifetime: lifetime}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.requests.Add(1)
		if s := ts.status.Load(); s != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(int(s))
			fmt.Fprint(w, `{"error":"invalid_client","error_description":"client secret s3cret is wrong"}`)
			return
		}
		id, secret, ok := r.BasicAuth()
		if err := r.ParseForm(); err != nil || !ok || id != "cid" || secret != "s3cret" ||
			r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "a b" || r.PostForm.Get("audience") != "aud" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		n := ts.issued.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "token_type": "Bearer", "expires_in": int(ts.lifetime.Seconds())})
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) config() *Config {
	return (&Config{Type: TypeOAuth2, TokenURL: ts.URL + "/token", ClientID: "cid", ClientSecret: "s3cret", Scopes: []string{"a", "b"}, Audience: "aud"}).Prepared()
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestTokenCache steps through a subscription's token's life: fetched
// once, reused, fetched again shortly before it expires, after a config
// change, and after a 401.
func TestTokenCache(t *testing.T) {
	ts := newTokenServer(t, time.Hour)
	clock := &fakeClock{now: time.Now()}
	a := NewAuthenticator(AuthenticatorConfig{Base: baseTransport(egress.Policy{AllowPrivate: true}), Now: clock.Now})
	cfg := ts.config()
	changed := ts.config()
	changed.Audience = "aud"
	changed.Scopes = []string{"a", "b"}
	steps := []struct {
		name       string
		before     func()
		cfg        *Config
		wantToken  string
		wantCached bool
		wantFetch  int64
		rejected   *bool // then tell Rejected; want its answer
	}{
		{name: "first fetch", cfg: cfg, wantToken: "tok-1", wantFetch: 1},
		{name: "cached", cfg: cfg, wantToken: "tok-1", wantCached: true, wantFetch: 1},
		{name: "still cached 59 min later", before: func() { clock.Add(59 * time.Minute) }, cfg: cfg, wantToken: "tok-1", wantCached: true, wantFetch: 1},
		{name: "within the margin before expiry", before: func() { clock.Add(40 * time.Second) }, cfg: cfg, wantToken: "tok-2", wantFetch: 2},
		{name: "cached again", cfg: cfg, wantToken: "tok-2", wantCached: true, wantFetch: 2, rejected: ptr(true)},
		{name: "after a 401 on a cached token", cfg: cfg, wantToken: "tok-3", wantFetch: 3, rejected: ptr(false)},
		{name: "after a 401 on a fresh token", cfg: cfg, wantToken: "tok-4", wantFetch: 4},
		{name: "other subscription", cfg: cfg, wantToken: "tok-5", wantFetch: 5},
	}
	for i, st := range steps {
		if st.before != nil {
			st.before()
		}
		sub := "sub_1"
		if st.name == "other subscription" {
			sub = "sub_2"
		}
		req, _ := http.NewRequest(http.MethodPost, "http://receiver/", nil)
		p, err := a.Prepare(context.Background(), sub, st.cfg, req)
		if err != nil {
			t.Fatalf("step %d %s: Prepare: %v", i, st.name, err)
		}
		if got := req.Header.Get("Authorization"); got != "Bearer "+st.wantToken || p.cached != st.wantCached {
			t.Errorf("step %d %s: Authorization = %q cached %v, want Bearer %s cached %v", i, st.name, got, p.cached, st.wantToken, st.wantCached)
		}
		if got := a.tokenFetches(); got != st.wantFetch {
			t.Errorf("step %d %s: fetches = %d, want %d", i, st.name, got, st.wantFetch)
		}
		if st.rejected != nil {
			if got := a.Rejected(sub, p); got != *st.rejected {
				t.Errorf("step %d %s: Rejected = %v, want %v", i, st.name, got, *st.rejected)
			}
		}
	}
	// A changed config fetches a new token at once.
	other := ts.config()
	other.ClientSecret = "s3cret"
	other.Scopes = []string{"a", "b"}
	other.ClientID = "cid"
	other.Audience = "aud"
	other.TokenURL = ts.URL + "/token?v=2"
	other = other.Prepared()
	req, _ := http.NewRequest(http.MethodPost, "http://receiver/", nil)
	if _, err := a.Prepare(context.Background(), "sub_1", other, req); err != nil {
		t.Fatal(err)
	}
	if got := a.tokenFetches(); got != 6 {
		t.Errorf("fetches after a config change = %d, want 6", got)
	}
}

func ptr[T any](v T) *T { return &v }

// TestShortTokens: a token living 10 s is used for 8 (a fifth of its life
// before expiry), not refetched at every attempt.
func TestShortTokens(t *testing.T) {
	ts := newTokenServer(t, 10*time.Second)
	clock := &fakeClock{now: time.Now()}
	a := NewAuthenticator(AuthenticatorConfig{Base: baseTransport(egress.Policy{AllowPrivate: true}), Now: clock.Now})
	for _, st := range []struct {
		advance time.Duration
		want    int64
	}{{0, 1}, {5 * time.Second, 1}, {2 * time.Second, 1}, {2 * time.Second, 2}} {
		clock.Add(st.advance)
		req, _ := http.NewRequest(http.MethodPost, "http://receiver/", nil)
		if _, err := a.Prepare(context.Background(), "sub_1", ts.config(), req); err != nil {
			t.Fatal(err)
		}
		if got := a.tokenFetches(); got != st.want {
			t.Errorf("after +%v: fetches = %d, want %d", st.advance, got, st.want)
		}
	}
}

// TestConcurrentFetch: attempts that find no token at once wait for one
// fetch.
func TestConcurrentFetch(t *testing.T) {
	ts := newTokenServer(t, time.Hour)
	a := NewAuthenticator(AuthenticatorConfig{Base: baseTransport(egress.Policy{AllowPrivate: true})})
	cfg := ts.config()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, "http://receiver/", nil)
			if _, err := a.Prepare(context.Background(), "sub_1", cfg, req); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := ts.requests.Load(); got != 1 {
		t.Errorf("token requests = %d, want 1", got)
	}
}

// TestTokenErrors: a token that cannot be had is a *TokenError whose
// message names what happened, never the secret nor the endpoint's body.
func TestTokenErrors(t *testing.T) {
	redirecting := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:1/token", http.StatusFound))
	t.Cleanup(redirecting.Close)
	noToken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"token_type":"Bearer"}`)
	}))
	t.Cleanup(noToken.Close)
	badToken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"tok\r\nX-Injected: 1","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(badToken.Close)
	refusing := newTokenServer(t, time.Hour)
	refusing.status.Store(http.StatusUnauthorized)
	failing := newTokenServer(t, time.Hour)
	failing.status.Store(http.StatusInternalServerError)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	cfgAt := func(u string) *Config {
		return (&Config{Type: TypeOAuth2, TokenURL: u, ClientID: "cid", ClientSecret: "s3cret"}).Prepared()
	}
	tests := []struct {
		name        string
		policy      egress.Policy
		cfg         *Config
		want        string
		unreachable bool
		is          error
	}{
		{"refused credentials", egress.Policy{AllowPrivate: true}, refusing.config(), "oauth2 token: the token endpoint answered 401 (invalid_client)", false, nil},
		{"server error", egress.Policy{AllowPrivate: true}, failing.config(), "oauth2 token: the token endpoint answered 500 (invalid_client)", false, nil},
		{"no access token", egress.Policy{AllowPrivate: true}, cfgAt(noToken.URL), "oauth2 token: the token endpoint's answer holds no usable access token", false, nil},
		{"token not fit for a header", egress.Policy{AllowPrivate: true}, cfgAt(badToken.URL), "oauth2 token: the token endpoint's answer holds no usable access token", false, nil},
		{"redirect", egress.Policy{AllowPrivate: true}, cfgAt(redirecting.URL), "oauth2 token: the token endpoint redirected; redirects are not followed", false, nil},
		{"connection refused", egress.Policy{AllowPrivate: true}, cfgAt(closedURL), "oauth2 token: the token endpoint could not be reached", true, nil},
		{"internal address", egress.Policy{}, refusing.config(), "oauth2 token: the token endpoint could not be reached", true, egress.ErrInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAuthenticator(AuthenticatorConfig{Base: baseTransport(tt.policy)})
			req, _ := http.NewRequest(http.MethodPost, "http://receiver/", nil)
			_, err := a.Prepare(context.Background(), "sub_1", tt.cfg, req)
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("Prepare = %v, want a *TokenError", err)
			}
			if te.Error() != tt.want || te.Unreachable() != tt.unreachable {
				t.Errorf("error = %q unreachable %v, want %q unreachable %v", te.Error(), te.Unreachable(), tt.want, tt.unreachable)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if strings.Contains(te.Error(), "s3cret") || req.Header.Get("Authorization") != "" {
				t.Errorf("error %q or the request shows the secret or a token", te.Error())
			}
		})
	}
}

// TestMTLSTransport: an mtls config's transport presents its certificate
// and trusts its bundle alone; it is made once per config, and a bounded
// number are kept.
func TestMTLSTransport(t *testing.T) {
	ca := testpki.NewCA(t, "Private CA")
	srvPair := ca.Server(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{srvPair.TLS(t)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	first, second := ca.Client(t, "first", time.Hour), ca.Client(t, "second", time.Hour)
	cfg := func(p testpki.Pair, bundle string) *Config {
		return (&Config{Type: TypeMTLS, Certificate: p.CertPEM, PrivateKey: p.KeyPEM, CABundle: bundle}).Prepared()
	}
	a := NewAuthenticator(AuthenticatorConfig{Base: baseTransport(egress.Policy{AllowPrivate: true}), MaxTransports: 1})
	send := func(c *Config) (string, http.RoundTripper, error) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		p, err := a.Prepare(context.Background(), "sub_1", c, req)
		if err != nil {
			return "", nil, err
		}
		resp, err := p.Transport.RoundTrip(req)
		if err != nil {
			return "", p.Transport, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), p.Transport, err
	}
	got, t1, err := send(cfg(first, ca.PEM))
	if err != nil || got != "first" {
		t.Fatalf("send with the first certificate = %q, %v; want first", got, err)
	}
	if _, t2, _ := send(cfg(first, ca.PEM)); t2 != t1 {
		t.Errorf("the same config made a second transport")
	}
	if got, _, err := send(cfg(second, ca.PEM)); err != nil || got != "second" {
		t.Errorf("send with the second certificate = %q, %v; want second", got, err)
	}
	if n := a.transports.len(); n != 1 {
		t.Errorf("transports kept = %d, want 1 (MaxTransports)", n)
	}
	// Without the bundle the private CA is not trusted: the system roots
	// are, and they do not know it.
	if _, _, err := send(cfg(first, "")); err == nil {
		t.Errorf("send without a CA bundle succeeded; want a certificate error")
	}
	// Without a client certificate the server refuses the handshake.
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	bare := baseTransport(egress.Policy{AllowPrivate: true})
	bare.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	if resp, err := bare.RoundTrip(req); err == nil {
		resp.Body.Close()
		t.Errorf("send without a client certificate succeeded")
	}
	// No auth: the caller's own transport.
	req, _ = http.NewRequest(http.MethodGet, srv.URL, nil)
	if p, err := a.Prepare(context.Background(), "sub_1", nil, req); err != nil || p.Transport != nil {
		t.Errorf("Prepare without auth = %v, %v; want no transport of its own", p.Transport, err)
	}
}

func TestLRU(t *testing.T) {
	var evicted []string
	c := newLRU(2, func(k string, _ int) { evicted = append(evicted, k) })
	t0 := time.Now()
	c.put("a", 1, t0)
	c.put("b", 2, t0)
	c.get("a", t0)
	c.put("c", 3, t0) // evicts b, the least recently used
	c.delete("a")
	if _, ok := c.get("b", t0); ok || c.len() != 1 || strings.Join(evicted, ",") != "b,a" {
		t.Errorf("evicted %v, len %d; want b,a and 1 left", evicted, c.len())
	}
	// Idle: d used later than c; dropping what was idle since before d's
	// use drops c alone.
	c.put("d", 4, t0.Add(time.Minute))
	c.dropIdle(t0.Add(time.Second))
	if _, ok := c.get("d", t0); !ok || c.len() != 1 || strings.Join(evicted, ",") != "b,a,c" {
		t.Errorf("after dropIdle: evicted %v, len %d; want b,a,c and d left", evicted, c.len())
	}
}

// TestConcurrentFetchFails: attempts that waited for a fetch that failed
// get its error; they do not each ask the failing token endpoint again.
func TestConcurrentFetchFails(t *testing.T) {
	gate := make(chan struct{})
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			<-gate
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { // unblock the handler whatever happens
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	a := NewAuthenticator(AuthenticatorConfig{Base: baseTransport(egress.Policy{AllowPrivate: true})})
	cfg := (&Config{Type: TypeOAuth2, TokenURL: srv.URL + "/token", ClientID: "cid", ClientSecret: "s3cret"}).Prepared()
	const n = 20
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, "http://receiver/", nil)
			_, err := a.Prepare(context.Background(), "sub_1", cfg, req)
			errs <- err
		})
	}
	poll.Until(t, 30*time.Second, "the other attempts waiting for the first one's fetch", func() bool {
		a.mu.Lock()
		e, ok := a.tokens.get("sub_1", time.Now())
		a.mu.Unlock()
		return ok && e.waiting.Load() == n-1 && requests.Load() == 1
	})
	close(gate)
	wg.Wait()
	close(errs)
	for err := range errs {
		var te *TokenError
		if !errors.As(err, &te) || te.Status != http.StatusServiceUnavailable {
			t.Errorf("Prepare = %v, want the token endpoint's 503", err)
		}
	}
	// One fetch: its two requests (the credentials in the header, then in
	// the body).
	if got := requests.Load(); got != 2 {
		t.Errorf("token requests = %d, want 2 (one fetch shared by the %d attempts)", got, n)
	}
}

// TestIdleDropped: the token of a subscription no longer delivered to
// (deleted, or its auth removed) and a transport no longer used are
// dropped once idle for long, their secrets with them, though the caches
// are far from full.
func TestIdleDropped(t *testing.T) {
	ts := newTokenServer(t, 10*time.Hour)
	ca := testpki.NewCA(t, "CA")
	pair := ca.Client(t, "svc", time.Hour)
	mtls := (&Config{Type: TypeMTLS, Certificate: pair.CertPEM, PrivateKey: pair.KeyPEM, CABundle: ca.PEM}).Prepared()
	clock := &fakeClock{now: time.Now()}
	a := NewAuthenticator(AuthenticatorConfig{Base: baseTransport(egress.Policy{AllowPrivate: true}), Now: clock.Now})
	prepare := func(sub string, cfg *Config) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "http://receiver/", nil)
		if _, err := a.Prepare(context.Background(), sub, cfg, req); err != nil {
			t.Fatal(err)
		}
	}
	prepare("sub_gone", ts.config())
	prepare("sub_mtls", mtls)
	clock.Add(30 * time.Minute)
	prepare("sub_live", ts.config())
	if a.tokens.len() != 2 || a.transports.len() != 1 {
		t.Fatalf("tokens %d transports %d, want 2 and 1", a.tokens.len(), a.transports.len())
	}
	clock.Add(DefaultIdleAfter)
	prepare("sub_live", ts.config())
	a.mu.Lock()
	_, gone := a.tokens.get("sub_gone", clock.Now())
	_, live := a.tokens.get("sub_live", clock.Now())
	transports := a.transports.len()
	a.mu.Unlock()
	if gone || !live || transports != 0 {
		t.Errorf("after %v idle: sub_gone's token kept %v, sub_live's %v, transports %d; want dropped, kept, 0", DefaultIdleAfter, gone, live, transports)
	}
}

// TestTokenLifetimeOnOwnClock: a token's lifetime is counted on the
// authenticator's clock, whatever the wall clock says: with a clock a day
// behind, a token of an hour is fetched again after an hour of it.
func TestTokenLifetimeOnOwnClock(t *testing.T) {
	ts := newTokenServer(t, time.Hour)
	for _, skew := range []time.Duration{-24 * time.Hour, 24 * time.Hour} {
		clock := &fakeClock{now: time.Now().Add(skew)}
		a := NewAuthenticator(AuthenticatorConfig{Base: baseTransport(egress.Policy{AllowPrivate: true}), Now: clock.Now})
		for _, st := range []struct {
			advance time.Duration
			want    int64
		}{{0, 1}, {time.Minute, 1}, {58 * time.Minute, 1}, {2 * time.Minute, 2}} {
			clock.Add(st.advance)
			req, _ := http.NewRequest(http.MethodPost, "http://receiver/", nil)
			if _, err := a.Prepare(context.Background(), "sub_1", ts.config(), req); err != nil {
				t.Fatal(err)
			}
			if got := a.tokenFetches(); got != st.want {
				t.Errorf("clock skewed %v, after +%v: fetches = %d, want %d", skew, st.advance, got, st.want)
			}
		}
	}
}

// TestMTLSTransportHTTP2AndGuard: an mtls transport speaks HTTP/2 where
// the endpoint does, as the shared one does, and passes the dial guard.
func TestMTLSTransportHTTP2AndGuard(t *testing.T) {
	ca := testpki.NewCA(t, "Private CA")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t).TLS(t)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: ca.Pool()}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pair := ca.Client(t, "svc", time.Hour)
	cfg := (&Config{Type: TypeMTLS, Certificate: pair.CertPEM, PrivateKey: pair.KeyPEM, CABundle: ca.PEM}).Prepared()
	for _, tt := range []struct {
		name   string
		policy egress.Policy
		proto  int // 0: refused by the guard
	}{{"allowed", egress.Policy{AllowPrivate: true}, 2}, {"guarded", egress.Policy{}, 0}} {
		d := &net.Dialer{Timeout: 5 * time.Second, Control: tt.policy.Control}
		base := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 5 * time.Second, ForceAttemptHTTP2: true}
		a := NewAuthenticator(AuthenticatorConfig{Base: base})
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		p, err := a.Prepare(context.Background(), "sub_1", cfg, req)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := p.Transport.RoundTrip(req)
		if tt.proto == 0 {
			if err == nil || !errors.Is(err, egress.ErrInternal) {
				t.Errorf("%s: RoundTrip = %v, want refused by the guard", tt.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: RoundTrip: %v", tt.name, err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != tt.proto {
			t.Errorf("%s: protocol %s, want HTTP/%d", tt.name, resp.Proto, tt.proto)
		}
	}
}
