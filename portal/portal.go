// Package portal is the tenant portal: server-rendered pages under
// /portal/ where a tenant sees and manages its subscriptions, deliveries,
// event types and API budget in a browser.
//
// Every action is an API request, made with package client over a
// transport that serves it in process with the API's own handler as the
// signed-in tenant (transport.go), so the portal never repeats a business
// rule: validation and field errors, tenant isolation, the rate-limit
// budget and its headers are exactly the API's. The portal owns only what
// a browser needs besides: sign-in (one-time links minted by an operator,
// or an API key), sessions, CSRF tokens and HTML.
//
// Pages are html/template with htmx 2.0.11 (vendored, embedded) boosting
// links and forms; every page also works without JavaScript. The
// Content-Security-Policy allows no inline script or style.
package portal

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/onestack/webhooks/client"
	"github.com/onestack/webhooks/subscriptions"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Directory is what the portal asks of the tenant and key index: enough
// to sign in with an API key, name the tenant and notice a revocation.
type Directory interface {
	// Tenant returns a tenant, or false once it is gone.
	Tenant(id string) (*subscriptions.Tenant, bool)
	// Authenticate returns the tenant and key id of an API key.
	Authenticate(presented string) (tenant, keyID string, ok bool)
	// KeyOwner returns the tenant of a live key, or false once revoked.
	KeyOwner(keyID string) (string, bool)
}

// Config wires the portal. API, Sessions and Directory are required.
type Config struct {
	// API is the API's handler, with its whole middleware chain: the
	// portal's client calls it in process.
	API http.Handler
	// Sessions keeps links and sessions.
	Sessions  *Sessions
	Directory Directory
	// PublicURL is the server's public scheme and host; an https one
	// marks cookies Secure even behind a TLS-terminating proxy.
	PublicURL string
	Logger    *slog.Logger
	// Now is the clock of the pages (default time.Now).
	Now func() time.Time
}

// Portal serves /portal/. Build it with New.
type Portal struct {
	cfg    Config
	logger *slog.Logger
	mux    *http.ServeMux
	pages  map[string]*template.Template
	static http.Handler
	cache  *client.Cache // the API answers of every tenant's pages, by tenant
	secure bool
}

// New builds the portal.
func New(cfg Config) *Portal {
	if cfg.API == nil || cfg.Sessions == nil || cfg.Directory == nil {
		panic("portal: Config.API, Sessions and Directory are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Portal{cfg: cfg, logger: cfg.Logger, mux: http.NewServeMux(), cache: client.NewCache(clientCacheEntries)}
	if u, err := url.Parse(cfg.PublicURL); err == nil && u.Scheme == "https" {
		p.secure = true
	}
	p.pages = parsePages()
	sub, _ := fs.Sub(staticFS, "static")
	p.static = http.StripPrefix("/portal/static/", http.FileServerFS(sub))
	p.routes()
	return p
}

// maxForm bounds a form a browser posts to the portal.
const maxForm = 256 << 10

// Prefix is the path the portal is served under.
const Prefix = "/portal/"

func (p *Portal) routes() {
	p.mux.HandleFunc("GET /portal/{$}", p.home)
	p.mux.HandleFunc("GET /portal/static/", p.serveStatic)
	p.mux.HandleFunc("GET /portal/login", p.loginPage)
	p.mux.HandleFunc("POST /portal/login", p.loginWithKey)
	p.mux.HandleFunc("POST /portal/logout", p.logout)

	p.handle("GET /portal/subscriptions", p.listSubscriptions)
	p.handle("GET /portal/subscriptions/new", p.newSubscription)
	p.handle("POST /portal/subscriptions", p.createSubscription)
	p.handleID("GET /portal/subscriptions/{id}", p.showSubscription)
	p.handleID("POST /portal/subscriptions/{id}", p.updateSubscription)
	p.handleID("POST /portal/subscriptions/{id}/active", p.setActive)
	p.handleID("POST /portal/subscriptions/{id}/delete", p.deleteSubscription)
	p.handleID("GET /portal/subscriptions/{id}/secret", p.showSecret)
	p.handleID("POST /portal/subscriptions/{id}/rotate-secret", p.rotateSecret)
	p.handleID("POST /portal/subscriptions/{id}/test", p.sendTest)
	p.handleID("POST /portal/subscriptions/{id}/replay", p.replay)
	p.handleID("GET /portal/subscriptions/{id}/deliveries", p.listDeliveries)
	p.handleID("GET /portal/deliveries/{id}", p.showDelivery)
	p.handleID("POST /portal/deliveries/{id}/retry", p.retryDelivery)
	p.handle("GET /portal/event-types", p.eventTypes)
	p.handleID("POST /portal/subscriptions/{id}/recover", p.recover)
	p.handle("GET /portal/events", p.listEvents)
	p.handleID("GET /portal/events/{id}", p.showEvent)
	p.handle("GET /portal/jobs", p.jobs)
	p.handleID("GET /portal/jobs/{id}", p.showJob)
	p.handle("GET /portal/usage", p.usage)
	p.handle("GET /portal/budget", p.usage) // its name before it grew into usage and limits
	p.mux.HandleFunc("/portal/", p.notFound)
}

// securityHeaders are sent with every portal answer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// ServeHTTP serves the portal.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	// Forms are small; the API bounds what it is sent on its own.
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	p.mux.ServeHTTP(w, r)
}

func (p *Portal) serveStatic(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	p.static.ServeHTTP(w, r)
}

// request is one signed-in request and what its page shows.
type request struct {
	r      *http.Request
	w      http.ResponseWriter
	ses    Session
	tenant string // the tenant's name
	// api calls the API as the session; its Budget is the one the page
	// shows.
	api   *client.Client
	flash string
}

// ctx is the context of the request's API calls.
func (rq *request) ctx() context.Context { return rq.r.Context() }

// budget is the rate-limit state the request's last API answer reported.
func (rq *request) budget() client.Budget {
	b := rq.api.Budget()
	b.Reset = b.Reset.UTC()
	return b
}

// handle registers a page that needs a session: it loads and checks the
// session (its tenant and key must still stand), checks the CSRF token of
// anything but a GET, and renders what the handler returns.
func (p *Portal) handle(pattern string, h func(rq *request) error) {
	p.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		c, err := r.Cookie(p.cookieName(r))
		if err != nil {
			p.toLogin(w, r, "")
			return
		}
		ses, refreshed, err := p.cfg.Sessions.load(r.Context(), c.Value)
		switch {
		case errors.Is(err, errNoSession):
			p.clearSession(w, r)
			p.toLogin(w, r, "Your session has ended. Sign in again.")
			return
		case err != nil:
			p.logger.Warn("portal: load session", "err", err)
			p.unavailable(w, r, nil)
			return
		}
		t, ok := p.cfg.Directory.Tenant(ses.Tenant)
		if ok && ses.KeyID != "" {
			owner, live := p.cfg.Directory.KeyOwner(ses.KeyID)
			ok = live && owner == ses.Tenant
		}
		if !ok {
			p.cfg.Sessions.end(r.Context(), c.Value)
			p.clearSession(w, r)
			p.toLogin(w, r, "Your session has ended: its API key or tenant was revoked.")
			return
		}
		if refreshed {
			p.setSession(w, r, c.Value)
		}
		rq := &request{r: r, w: w, ses: ses, tenant: t.Name, api: p.apiClient(r, ses)}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !p.sameOrigin(r) || !sameToken(csrfOf(r), ses.CSRF) {
				p.renderError(rq, http.StatusForbidden, "This form is out of date or did not come from the portal. Reload the page and try again.")
				return
			}
		}
		rq.flash = p.takeFlash(w, r)
		if err := h(rq); err != nil {
			p.fail(rq, err)
		}
	})
}

// csrfOf is a request's CSRF token: the htmx header or the form field.
func csrfOf(r *http.Request) string {
	if t := r.Header.Get("X-CSRF-Token"); t != "" {
		return t
	}
	return r.PostFormValue("csrf")
}

// sameOrigin refuses a state-changing request that a browser says came
// from another site. The CSRF token is the real check; this is a second.
func (p *Portal) sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return true
}

// toLogin sends a browser without a session to the sign-in page.
func (p *Portal) toLogin(w http.ResponseWriter, r *http.Request, msg string) {
	if msg != "" {
		p.setFlash(w, r, msg)
	}
	target := LoginPath
	if r.Method == http.MethodGet && r.URL.Path != "/portal/" {
		target += "?next=" + url.QueryEscape(r.URL.RequestURI())
	}
	if r.Header.Get("HX-Request") == "true" {
		// htmx follows a redirect inside its request; this makes the
		// whole page go.
		w.Header().Set("HX-Redirect", target)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, "/portal/subscriptions", http.StatusSeeOther)
}

func (p *Portal) notFound(w http.ResponseWriter, r *http.Request) {
	p.renderPublic(w, r, http.StatusNotFound, "error", "Not found", errorPage{Message: "There is no such page in the portal."})
}
