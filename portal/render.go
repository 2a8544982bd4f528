package portal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/onestack/webhooks/client"
)

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"login", "signed-in", "error", "limited", "subscriptions", "subscription-form",
	"subscription", "secret", "deliveries", "delivery", "event-types", "budget", "events", "event", "jobs", "job"}

var funcs = template.FuncMap{
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return ""
	},
	"join":      strings.Join,
	"hasPrefix": strings.HasPrefix,
	"inc":       func(i int) int { return i + 1 },
	// pair hands a partial the page and one item of it.
	"pair": func(root, item any) map[string]any { return map[string]any{"Root": root, "D": item} },
	"has": func(list []string, s string) bool {
		for _, v := range list {
			if v == s {
				return true
			}
		}
		return false
	},
	"deref": func(p any) any {
		switch v := p.(type) {
		case *int:
			if v == nil {
				return ""
			}
			return *v
		case *string:
			if v == nil {
				return ""
			}
			return *v
		case *float64:
			if v == nil {
				return ""
			}
			return strconv.FormatFloat(*v, 'f', -1, 64)
		case *bool:
			return v != nil && *v
		}
		return p
	},
}

func parsePages() map[string]*template.Template {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+name+".html"))
		pages[name] = t
	}
	return pages
}

// view is what the layout shows around a page.
type view struct {
	Title    string
	Tenant   string
	TenantID string
	CSRF     string
	Budget   client.Budget
	Flash    string
	Section  string
	SignedIn bool
	// Data is the page's own struct (pages.go, views.go).
	Data any
}

// render writes a signed-in page.
func (p *Portal) render(rq *request, status int, name, title, section string, data any) error {
	v := view{Title: title, Tenant: rq.tenant, TenantID: rq.ses.Tenant, CSRF: rq.ses.CSRF, Budget: rq.budget(),
		Flash: rq.flash, Section: section, SignedIn: true, Data: data}
	return p.write(rq.w, rq.r, status, name, v)
}

// renderPublic writes a page outside a session.
func (p *Portal) renderPublic(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	v := view{Title: title, Flash: p.takeFlash(w, r), Data: data}
	if err := p.write(w, r, status, name, v); err != nil {
		p.logger.Error("portal: render", "page", name, "err", err)
	}
}

func (p *Portal) write(w http.ResponseWriter, r *http.Request, status int, name string, v view) error {
	var buf bytes.Buffer
	if err := p.pages[name].Execute(&buf, v); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if r.Header.Get("HX-Request") == "true" && r.Method == http.MethodGet {
		// A boosted navigation: the address bar shows the page's own URL,
		// also after a redirect.
		h.Set("HX-Push-Url", r.URL.RequestURI())
	}
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// renderError writes a signed-in error page.
func (p *Portal) renderError(rq *request, status int, msg string) {
	if err := p.render(rq, status, "error", http.StatusText(status), "", errorPage{Message: msg}); err != nil {
		p.logger.Error("portal: render error page", "err", err)
	}
}

// fail answers an error a page handler returned: the API's own answers
// become pages (a 429 says when to try again, a 404 is a not-found page,
// a 401 ends the session); anything else is logged and answered 500.
func (p *Portal) fail(rq *request, err error) {
	var ae *client.Error
	if !errors.As(err, &ae) {
		p.logger.Error("portal: internal error", "path", rq.r.URL.Path, "err", err)
		p.renderError(rq, http.StatusInternalServerError, "Something went wrong on our side. Try again in a moment.")
		return
	}
	switch ae.Status {
	case http.StatusTooManyRequests:
		p.limited(rq, ae)
	case http.StatusUnauthorized:
		p.cfg.Sessions.end(rq.r.Context(), p.cookieValue(rq.r))
		p.clearSession(rq.w, rq.r)
		p.toLogin(rq.w, rq.r, "Your session has ended. Sign in again.")
	case http.StatusServiceUnavailable:
		p.unavailable(rq.w, rq.r, ae)
	case http.StatusNotFound:
		p.renderError(rq, http.StatusNotFound, "Not found: "+apiMessage(ae)+".")
	default:
		p.renderError(rq, ae.Status, apiMessage(ae))
	}
}

// limited answers a 429: when to try again, with the API's Retry-After.
func (p *Portal) limited(rq *request, ae *client.Error) {
	after := max(ae.RetryAfter, 1)
	rq.w.Header().Set("Retry-After", strconv.Itoa(after))
	data := limitedPage{
		RetryAfter: after,
		At:         p.cfg.Now().Add(time.Duration(after) * time.Second).UTC().Format("15:04:05 UTC"),
		Again:      rq.r.URL.RequestURI(),
		IsGet:      rq.r.Method == http.MethodGet,
	}
	if lim, ok := ae.Details["limit"].(float64); ok {
		data.Limit = int(lim)
	}
	if err := p.render(rq, http.StatusTooManyRequests, "limited", "Rate limit reached", "", data); err != nil {
		p.logger.Error("portal: render 429", "err", err)
	}
}

// unavailable answers 503 with Retry-After.
func (p *Portal) unavailable(w http.ResponseWriter, r *http.Request, ae *client.Error) {
	after := 5
	if ae != nil && ae.RetryAfter > 0 {
		after = ae.RetryAfter
	}
	w.Header().Set("Retry-After", strconv.Itoa(after))
	p.renderPublic(w, r, http.StatusServiceUnavailable, "error", "Unavailable",
		errorPage{Message: fmt.Sprintf("The service is briefly unavailable. Try again in %d seconds.", after)})
}

// Cookies.

const (
	sessionCookie = "portal_session"
	// secureSessionCookie is the name over https: the __Host- prefix
	// makes the browser refuse it from anything but this exact host.
	secureSessionCookie = "__Host-portal_session"
	flashCookie         = "portal_flash"
	loginCSRFCookie     = "portal_login_csrf"
)

// isSecure reports whether the browser talks https to us.
func (p *Portal) isSecure(r *http.Request) bool { return p.secure || r.TLS != nil }

func (p *Portal) cookieName(r *http.Request) string {
	if p.isSecure(r) {
		return secureSessionCookie
	}
	return sessionCookie
}

func (p *Portal) cookieValue(r *http.Request) string {
	c, err := r.Cookie(p.cookieName(r))
	if err != nil {
		return ""
	}
	return c.Value
}

// cookie builds a portal cookie. __Host- cookies must have Path=/; the
// others are kept to /portal/.
func (p *Portal) cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	path := Prefix
	if strings.HasPrefix(name, "__Host-") {
		path = "/"
	}
	return &http.Cookie{Name: name, Value: value, Path: path, MaxAge: maxAge, HttpOnly: true,
		Secure: p.isSecure(r), SameSite: http.SameSiteStrictMode}
}

func (p *Portal) setSession(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, p.cookie(r, p.cookieName(r), value, int(p.cfg.Sessions.cfg.SessionTTL/time.Second)))
}

func (p *Portal) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, p.cookie(r, p.cookieName(r), "", -1))
}

// setFlash keeps a one-time message for the next page.
func (p *Portal) setFlash(w http.ResponseWriter, r *http.Request, msg string) {
	http.SetCookie(w, p.cookie(r, flashCookie, base64.RawURLEncoding.EncodeToString([]byte(msg)), 60))
}

// takeFlash reads and clears the one-time message.
func (p *Portal) takeFlash(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(flashCookie)
	if err != nil {
		return ""
	}
	http.SetCookie(w, p.cookie(r, flashCookie, "", -1))
	b, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil || len(b) > 500 {
		return ""
	}
	return string(b)
}

// redirect sends the browser on after an action (303: the next request
// is a GET), with a one-time message.
func (p *Portal) redirect(rq *request, to, flash string) error {
	if flash != "" {
		p.setFlash(rq.w, rq.r, flash)
	}
	http.Redirect(rq.w, rq.r, to, http.StatusSeeOther)
	return nil
}
