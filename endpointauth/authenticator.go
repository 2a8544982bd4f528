package endpointauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Defaults of AuthenticatorConfig.
const (
	DefaultMaxTokens     = 10_000
	DefaultMaxTransports = 256
	// DefaultExpiryMargin is how long before its expiry a token is no
	// longer used: at most this, and at most a fifth of its lifetime.
	DefaultExpiryMargin = 30 * time.Second
	// DefaultIdleAfter is how long a token or transport is kept unused:
	// the subscription deleted, its auth removed or changed, nothing
	// tells the authenticator, so what no attempt asks for that long is
	// dropped, its secrets with it.
	DefaultIdleAfter = time.Hour
)

// AuthenticatorConfig sets up an Authenticator. Base is required; the
// zero value of every other field means its default.
type AuthenticatorConfig struct {
	// Base is the transport webhooks are sent with: the dial guard
	// (egress.Policy.Control), no proxy, the timeouts. The token endpoint
	// is called through a clone of it, and an mtls endpoint through a
	// clone with its client certificate, so every connection made for an
	// endpoint passes the same guard.
	Base *http.Transport
	// MaxTokens bounds the cached tokens (one per subscription with
	// oauth2); the least recently used goes first.
	MaxTokens int
	// MaxTransports bounds the mtls transports kept, one per distinct
	// certificate, key and CA bundle; an evicted one closes its idle
	// connections.
	MaxTransports int
	// ExpiryMargin: see DefaultExpiryMargin.
	ExpiryMargin time.Duration
	// IdleAfter: see DefaultIdleAfter.
	IdleAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c AuthenticatorConfig) withDefaults() AuthenticatorConfig {
	if c.MaxTokens <= 0 {
		c.MaxTokens = DefaultMaxTokens
	}
	if c.MaxTransports <= 0 {
		c.MaxTransports = DefaultMaxTransports
	}
	if c.IdleAfter <= 0 {
		c.IdleAfter = DefaultIdleAfter
	}
	if c.ExpiryMargin <= 0 {
		c.ExpiryMargin = DefaultExpiryMargin
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Authenticator prepares deliveries to endpoints that authenticate: it
// caches one OAuth2 token per subscription (and per config: a changed
// config fetches a new one) until shortly before it expires, and one
// transport per distinct mtls config; what no attempt has asked for in
// IdleAfter (a deleted subscription's, a replaced config's) is dropped,
// its secrets with it. It is safe for concurrent use.
//
// Tokens are kept in this process only: each replica fetches its own,
// which client-credentials servers allow, and no bearer token is written
// to storage.
type Authenticator struct {
	cfg         AuthenticatorConfig
	tokenClient *http.Client

	mu         sync.Mutex
	tokens     *lru[string, *tokenEntry]     // by subscription id
	transports *lru[string, *http.Transport] // by fingerprint
	// fetches counts token requests made, for tests and metrics.
	fetches int64
}

// NewAuthenticator returns an Authenticator sending through cfg.Base.
func NewAuthenticator(cfg AuthenticatorConfig) *Authenticator {
	if cfg.Base == nil {
		panic("endpointauth: AuthenticatorConfig.Base is required") // a programmer's mistake
	}
	cfg = cfg.withDefaults()
	a := &Authenticator{cfg: cfg}
	a.tokenClient = &http.Client{
		Transport: cfg.Base.Clone(),
		// A token endpoint that redirects is refused rather than followed:
		// the guard checks every dial, but a redirect would also carry
		// the client's credentials elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return errRedirect },
	}
	a.tokens = newLRU[string, *tokenEntry](cfg.MaxTokens, nil)
	a.transports = newLRU(cfg.MaxTransports, func(_ string, t *http.Transport) { t.CloseIdleConnections() })
	return a
}

var errRedirect = errors.New("the token endpoint redirected; redirects are not followed")

// TokenError is a delivery's failure to get its OAuth2 token. Its message
// starts "oauth2 token: " and never holds the client secret, nor what the
// token endpoint wrote in its answer's body.
type TokenError struct {
	// Status is the token endpoint's HTTP status (0: no answer).
	Status int
	// Code is the OAuth2 error code the endpoint answered, if any.
	Code string
	// Err is what failed.
	Err error
	// unreachable: the request did not get an answer (dial, TLS,
	// timeout); Err says why.
	unreachable bool
}

func (e *TokenError) Error() string { return "oauth2 token: " + e.Reason() }

// Reason is the message without its "oauth2 token: " prefix.
func (e *TokenError) Reason() string {
	switch {
	case e.Status != 0 && e.Code != "":
		return fmt.Sprintf("the token endpoint answered %d (%s)", e.Status, e.Code)
	case e.Status != 0:
		return fmt.Sprintf("the token endpoint answered %d", e.Status)
	case errors.Is(e.Err, errRedirect):
		return errRedirect.Error()
	case e.unreachable:
		return "the token endpoint could not be reached"
	}
	return "the token endpoint's answer holds no usable access token"
}

// Unreachable reports whether the token endpoint gave no answer (a dial
// refused or failed, TLS, a timeout); Err then says why.
func (e *TokenError) Unreachable() bool { return e.unreachable }

func (e *TokenError) Unwrap() error { return e.Err }

// Prepared is a request made ready by Prepare.
type Prepared struct {
	// Transport sends the request: with mtls, the one presenting the
	// subscription's client certificate; nil, the caller's own.
	Transport http.RoundTripper
	// token is the bearer token set, and whether it came from the cache.
	token  string
	cached bool
}

// Prepare readies req for subscription sub with auth (nil: none): with
// oauth2 it sets the Authorization header, fetching a token if none is
// cached (a failure is a *TokenError); with mtls it returns the transport
// presenting the certificate. ctx bounds a token fetch.
func (a *Authenticator) Prepare(ctx context.Context, sub string, auth *Config, req *http.Request) (Prepared, error) {
	if auth == nil {
		return Prepared{}, nil
	}
	switch auth.Type {
	case TypeOAuth2:
		tok, cached, err := a.token(ctx, sub, auth)
		if err != nil {
			return Prepared{}, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		return Prepared{token: tok, cached: cached}, nil
	case TypeMTLS:
		t, err := a.transport(auth)
		if err != nil {
			return Prepared{}, err
		}
		return Prepared{Transport: t}, nil
	}
	return Prepared{}, fmt.Errorf("endpoint auth type %q is not known", auth.Type)
}

// Rejected tells the authenticator that the endpoint answered 401 to a
// request p prepared: a cached token it carried is dropped. It reports
// whether the request is worth sending again with a fresh token (the
// rejected token came from the cache, so a new one may be accepted);
// a token fetched for this very request is dropped too, but not retried.
func (a *Authenticator) Rejected(sub string, p Prepared) bool {
	if p.token == "" {
		return false
	}
	a.mu.Lock()
	e, ok := a.tokens.get(sub, a.cfg.Now())
	a.mu.Unlock()
	if ok {
		e.drop(p.token)
	}
	return p.cached
}

// tokenFetches returns how many token fetches were made (each one or,
// while the way of sending the credentials is probed, two requests).
func (a *Authenticator) tokenFetches() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fetches
}

// transport returns the cached transport of an mtls config, made on the
// first use.
func (a *Authenticator) transport(auth *Config) (*http.Transport, error) {
	fp := auth.Fingerprint()
	now := a.cfg.Now()
	a.mu.Lock()
	a.dropIdle(now)
	t, ok := a.transports.get(fp, now)
	a.mu.Unlock()
	if ok {
		return t, nil
	}
	tc, err := auth.tlsConfig()
	if err != nil {
		return nil, err
	}
	t = a.cfg.Base.Clone()
	t.TLSClientConfig = tc
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.transports.get(fp, now); ok { // made meanwhile by another attempt
		return cur, nil
	}
	a.transports.put(fp, t, now)
	return t, nil
}

// dropIdle drops the tokens and transports no attempt has asked for
// since IdleAfter before now. Callers hold mu.
func (a *Authenticator) dropIdle(now time.Time) {
	since := now.Add(-a.cfg.IdleAfter)
	a.tokens.dropIdle(since)
	a.transports.dropIdle(since)
}

// tokenEntry is one subscription's token. sem, a lock a waiter can give
// up on, makes the attempts that find no valid token wait for one fetch.
type tokenEntry struct {
	fingerprint string
	cc          *clientcredentials.Config
	sem         chan struct{}
	// waiting counts the attempts waiting for sem (for tests).
	waiting atomic.Int32

	mu     sync.Mutex
	token  string
	usable time.Time // the token is used until then
	// fetches counts the fetches finished; failed is the last one's
	// error when it failed for a reason of the token endpoint's (not the
	// fetching attempt's own context), shared with the attempts that
	// waited for it.
	fetches uint64
	failed  *TokenError
}

// current returns the token, whether it is usable at now, and how many
// fetches have finished.
func (e *tokenEntry) current(now time.Time) (string, bool, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.token, e.token != "" && now.Before(e.usable), e.fetches
}

// failedSince returns the error of the last fetch if it failed and
// finished after the caller saw seen fetches finished.
func (e *tokenEntry) failedSince(seen uint64) *TokenError {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fetches != seen {
		return e.failed
	}
	return nil
}

// settle records a finished fetch: its token or its error.
func (e *tokenEntry) settle(tok string, usable time.Time, err *TokenError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fetches++
	e.failed = nil
	if err != nil {
		if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			e.failed = err
		}
		return
	}
	e.token, e.usable = tok, usable
}

func (e *tokenEntry) drop(tok string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.token == tok {
		e.token = ""
	}
}

// entry returns sub's token entry for auth, made anew if auth changed.
func (a *Authenticator) entry(sub string, auth *Config) *tokenEntry {
	fp := auth.Fingerprint()
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.dropIdle(now)
	if e, ok := a.tokens.get(sub, now); ok && e.fingerprint == fp {
		return e
	}
	cc := &clientcredentials.Config{ClientID: auth.ClientID, ClientSecret: auth.ClientSecret, TokenURL: auth.TokenURL, Scopes: auth.Scopes}
	if auth.Audience != "" {
		cc.EndpointParams = url.Values{"audience": {auth.Audience}}
	}
	e := &tokenEntry{fingerprint: fp, cc: cc, sem: make(chan struct{}, 1)}
	a.tokens.put(sub, e, now)
	return e
}

// token returns a usable token of sub, from the cache or fetched now.
func (a *Authenticator) token(ctx context.Context, sub string, auth *Config) (string, bool, error) {
	e := a.entry(sub, auth)
	tok, ok, seen := e.current(a.cfg.Now())
	if ok {
		return tok, true, nil
	}
	e.waiting.Add(1)
	select {
	case e.sem <- struct{}{}:
		e.waiting.Add(-1)
	case <-ctx.Done():
		e.waiting.Add(-1)
		return "", false, &TokenError{Err: ctx.Err(), unreachable: true}
	}
	defer func() { <-e.sem }()
	if tok, ok, _ := e.current(a.cfg.Now()); ok { // fetched while this one waited
		return tok, true, nil
	}
	// A fetch that finished while this one waited failed: its answer is
	// this attempt's too, rather than asking a failing endpoint again at
	// once for every attempt that was queued behind it.
	if te := e.failedSince(seen); te != nil {
		return "", false, te
	}
	a.mu.Lock()
	a.fetches++
	a.mu.Unlock()
	start, wallStart := a.cfg.Now(), time.Now()
	t, err := e.cc.Token(context.WithValue(ctx, oauth2.HTTPClient, a.tokenClient))
	if err != nil {
		te := tokenError(err)
		e.settle("", time.Time{}, te)
		return "", false, te
	}
	if t.AccessToken == "" || !scopeToken(t.AccessToken) {
		// No token, or one no Authorization header can carry (a space, a
		// control character): the endpoint's fault, not the destination's.
		te := &TokenError{Err: errors.New("the token endpoint answered no access_token fit for an Authorization header")}
		e.settle("", time.Time{}, te)
		return "", false, te
	}
	// The lifetime is counted on this authenticator's clock from when the
	// request left: t.Expiry is on the wall clock, which Now may not be.
	var expiry time.Time
	if !t.Expiry.IsZero() {
		expiry = start.Add(t.Expiry.Sub(wallStart))
	}
	e.settle(t.AccessToken, a.usableUntil(start, expiry), nil)
	return t.AccessToken, false, nil
}

// usableUntil is when a token fetched at start, expiring at expiry (zero:
// not said), stops being used: DefaultExpiryMargin before, or a fifth of
// its lifetime for a short one. A token without expiry is used for an
// hour, then fetched again.
func (a *Authenticator) usableUntil(start, expiry time.Time) time.Time {
	if expiry.IsZero() {
		return start.Add(time.Hour)
	}
	life := expiry.Sub(start)
	return expiry.Add(-min(a.cfg.ExpiryMargin, life/5))
}

// tokenError sorts a failed fetch: no answer, an HTTP error answer, or
// an answer without a usable token.
func tokenError(err error) *TokenError {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		code := re.ErrorCode
		if len(code) > 64 || !scopeToken(code) {
			code = ""
		}
		return &TokenError{Status: re.Response.StatusCode, Code: code, Err: errors.New("token endpoint answered " + strconv.Itoa(re.Response.StatusCode))}
	}
	var ue *url.Error
	if errors.As(err, &ue) && !errors.Is(err, errRedirect) {
		return &TokenError{Err: err, unreachable: true}
	}
	if errors.Is(err, errRedirect) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &TokenError{Err: err, unreachable: !errors.Is(err, errRedirect)}
	}
	return &TokenError{Err: errors.New("the token endpoint's answer holds no usable access token")}
}
