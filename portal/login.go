package portal

import (
	"errors"
	"net/http"
	"strings"
)

// Sign-in, by a one-time link or an API key, and sign-out.

func (p *Portal) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	next := safeNext(r.URL.Query().Get("next"))
	if token := r.URL.Query().Get("token"); token != "" {
		p.redeemLink(w, r, token)
		return
	}
	if v := p.cookieValue(r); v != "" {
		if _, _, err := p.cfg.Sessions.load(r.Context(), v); err == nil {
			http.Redirect(w, r, next, http.StatusSeeOther)
			return
		}
	}
	p.loginForm(w, r, http.StatusOK, next, "")
}

// loginForm shows the API key form. Without a session there is no
// session CSRF token yet, so the form carries a double-submit token: the
// same random value in a SameSite=Strict cookie and in a hidden field.
func (p *Portal) loginForm(w http.ResponseWriter, r *http.Request, status int, next, problem string) {
	token := newToken()
	http.SetCookie(w, p.cookie(r, loginCSRFCookie, token, 3600))
	p.renderPublic(w, r, status, "login", "Sign in", loginPage{CSRF: token, Next: next, Problem: problem})
}

// redeemLink consumes a one-time link and starts a session. The answer is
// a page that moves on by itself rather than a redirect: a browser that
// opened the link from another site (a mail client, a chat) would not send
// a SameSite=Strict cookie along a redirect that site started.
func (p *Portal) redeemLink(w http.ResponseWriter, r *http.Request, token string) {
	cookie, ses, err := p.cfg.Sessions.redeem(r.Context(), token)
	if errors.Is(err, errLinkUsed) {
		p.loginForm(w, r, http.StatusForbidden, "/portal/subscriptions", errLinkUsed.Error()+". Ask your operator for a new link, or sign in with an API key.")
		return
	}
	if err != nil {
		p.logger.Warn("portal: redeem link", "err", err)
		p.unavailable(w, r, nil)
		return
	}
	p.setSession(w, r, cookie)
	name := ses.Tenant
	if t, ok := p.cfg.Directory.Tenant(ses.Tenant); ok {
		name = t.Name
	}
	p.renderPublic(w, r, http.StatusOK, "signed-in", "Signed in", signedInPage{Tenant: name, Next: "/portal/subscriptions"})
}

func (p *Portal) loginWithKey(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	next := safeNext(r.PostFormValue("next"))
	c, err := r.Cookie(loginCSRFCookie)
	if err != nil || !p.sameOrigin(r) || !sameToken(r.PostFormValue("csrf"), c.Value) {
		p.loginForm(w, r, http.StatusForbidden, next, "The sign-in form expired. Try again.")
		return
	}
	tenant, keyID, ok := p.cfg.Directory.Authenticate(strings.TrimSpace(r.PostFormValue("apiKey")))
	if !ok {
		p.loginForm(w, r, http.StatusUnauthorized, next, "That API key is not valid: it is malformed, unknown or revoked.")
		return
	}
	if old := p.cookieValue(r); old != "" {
		p.cfg.Sessions.end(r.Context(), old)
	}
	cookie, _, err := p.cfg.Sessions.open(r.Context(), tenant, keyID)
	if err != nil {
		p.logger.Warn("portal: open session", "err", err)
		p.unavailable(w, r, nil)
		return
	}
	p.setSession(w, r, cookie)
	http.SetCookie(w, p.cookie(r, loginCSRFCookie, "", -1))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	v := p.cookieValue(r)
	if v == "" {
		p.toLogin(w, r, "")
		return
	}
	ses, _, err := p.cfg.Sessions.load(r.Context(), v)
	if err == nil && (!p.sameOrigin(r) || !sameToken(csrfOf(r), ses.CSRF)) {
		http.Error(w, "forbidden: the sign-out form did not come from the portal", http.StatusForbidden)
		return
	}
	if err := p.cfg.Sessions.end(r.Context(), v); err != nil {
		p.logger.Warn("portal: end session", "err", err)
		p.unavailable(w, r, nil)
		return
	}
	p.clearSession(w, r)
	p.toLogin(w, r, "Signed out.")
}

// safeNext keeps a post-sign-in destination inside the portal.
func safeNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.HasPrefix(next, LoginPath) ||
		strings.ContainsAny(next, "\\\r\n") || strings.Contains(next, "//") {
		return "/portal/subscriptions"
	}
	return next
}
