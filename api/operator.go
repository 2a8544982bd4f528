package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Portal is what the operator API asks of the tenant portal.
type Portal interface {
	// NewLink mints a one-time sign-in link for tenant that is valid until
	// expiresAt. It returns the link's path and query ("/portal/..."),
	// which the API joins to the server's public URL.
	NewLink(ctx context.Context, tenant string) (path string, expiresAt time.Time, err error)
	// EndSessions signs every portal session of tenant out and returns
	// how many there were.
	EndSessions(ctx context.Context, tenant string) (int, error)
}

func (a *API) listTenants(w http.ResponseWriter, r *http.Request, _ *caller) error {
	limit, before, err := page(r)
	if err != nil {
		return err
	}
	list, more := a.cfg.Store.Index().Tenants(before, limit)
	out := listPage[tenantView]{Data: make([]tenantView, len(list))}
	for i, t := range list {
		out.Data[i] = a.viewTenant(t)
	}
	if more {
		out.NextCursor = encodeCursor(list[len(list)-1].ID)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// storedKeyView is an API key as listed: never the key itself.
type storedKeyView struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
}

func (a *API) listKeys(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id := r.PathValue("id")
	if _, err := a.cfg.Store.LoadTenant(r.Context(), id); err != nil {
		return tenantErr(err)
	}
	keys := a.cfg.Store.Index().Keys(id)
	out := listPage[storedKeyView]{Data: make([]storedKeyView, len(keys))}
	for i, k := range keys {
		out.Data[i] = storedKeyView{ID: k.ID, CreatedAt: k.CreatedAt}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// portalTenant checks that the portal is wired and the tenant exists.
func (a *API) portalTenant(r *http.Request) (string, error) {
	if a.cfg.Portal == nil {
		return "", &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: "the tenant portal is not enabled on this server"}
	}
	id := r.PathValue("id")
	if _, err := a.cfg.Store.LoadTenant(r.Context(), id); err != nil {
		return "", tenantErr(err)
	}
	return id, nil
}

func (a *API) createPortalSession(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := a.portalTenant(r)
	if err != nil {
		return err
	}
	path, expires, err := a.cfg.Portal.NewLink(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expiresAt"`
	}{publicBase(a.cfg.PublicURL, r) + path, expires.UTC()})
	return nil
}

func (a *API) endPortalSessions(w http.ResponseWriter, r *http.Request, _ *caller) error {
	id, err := a.portalTenant(r)
	if err != nil {
		return err
	}
	n, err := a.cfg.Portal.EndSessions(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]int{"ended": n})
	return nil
}

// publicBase is the scheme and host links are built on: the configured
// public URL, or else the request's own scheme and Host header (which a
// reverse proxy may rewrite: set the public URL behind one).
func publicBase(configured string, r *http.Request) string {
	if configured != "" {
		return strings.TrimRight(configured, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// CheckPublicURL validates a public URL setting: absolute http or https,
// a host, and no path, query or credentials.
func CheckPublicURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("want an http or https URL")
	case u.Host == "":
		return errors.New("want a host")
	case u.User != nil:
		return errors.New("must not hold credentials")
	case strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "":
		return errors.New("must be scheme and host only (the portal is served at /portal/)")
	}
	return nil
}
