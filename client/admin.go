package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// Admin calls the operator API (/admin/...) with the operator's token. It
// waits and retries as Client does (the operator API is not rate limited,
// but a 503's Retry-After is honoured). It is safe for concurrent use.
type Admin struct {
	c *Client
}

// NewAdmin returns an operator client. cfg.APIKey is not used: token is
// the operator's bearer token (webhookd's --admin-token).
func NewAdmin(cfg Config, token string) (*Admin, error) {
	if token == "" {
		return nil, errors.New("client: an admin token is required")
	}
	cfg.APIKey = token
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return &Admin{c: c}, nil
}

// Tenant is a tenant as the operator API shows it.
type Tenant struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	RateLimit int    `json:"rateLimit"`
	// Limits are the tenant's limits as in effect, by name.
	Limits    map[string]int64 `json:"limits,omitempty"`
	CreatedAt time.Time        `json:"createdAt"`
}

// APIKey is a key in clear, shown once when it is created.
type APIKey struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

// StoredKey is a live key as listed: its id, never the key.
type StoredKey struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
}

// NewTenant is a created tenant with its first key.
type NewTenant struct {
	Tenant
	APIKey APIKey `json:"apiKey"`
}

// PortalLink is a one-time sign-in link into the tenant portal.
type PortalLink struct {
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// CreateTenant creates a tenant and its first API key; rateLimit 0 means
// the default (100 a minute).
func (a *Admin) CreateTenant(ctx context.Context, name string, rateLimit int) (NewTenant, error) {
	in := map[string]any{"name": name}
	if rateLimit > 0 {
		in["rateLimit"] = rateLimit
	}
	var out NewTenant
	err := a.c.do(ctx, http.MethodPost, "/admin/tenants", in, &out)
	return out, err
}

// Tenant reads a tenant.
func (a *Admin) Tenant(ctx context.Context, id string) (Tenant, error) {
	var out Tenant
	err := a.c.do(ctx, http.MethodGet, "/admin/tenants/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Tenants reads one page of tenants, newest first; pass the returned
// cursor for the next ("" when there is none).
func (a *Admin) Tenants(ctx context.Context, limit int, cursor string) ([]Tenant, string, error) {
	return readPage[Tenant](ctx, a.c, "/admin/tenants", url.Values{}, limit, cursor)
}

// TenantPatch changes a tenant; nil fields are left as they are.
type TenantPatch struct {
	Name      *string `json:"name,omitempty"`
	RateLimit *int    `json:"rateLimit,omitempty"`
	// Limits override the tenant's limits by name; a name left out keeps
	// its value.
	Limits map[string]int64 `json:"limits,omitempty"`
}

// UpdateTenant changes a tenant's name or rate limit (from its next
// request).
func (a *Admin) UpdateTenant(ctx context.Context, id string, p TenantPatch) (Tenant, error) {
	var out Tenant
	err := a.c.do(ctx, http.MethodPatch, "/admin/tenants/"+url.PathEscape(id), p, &out)
	return out, err
}

// CreateKey issues another API key for a tenant.
func (a *Admin) CreateKey(ctx context.Context, tenant string) (APIKey, error) {
	var out APIKey
	err := a.c.do(ctx, http.MethodPost, "/admin/tenants/"+url.PathEscape(tenant)+"/keys", nil, &out)
	return out, err
}

// Keys lists a tenant's live keys.
func (a *Admin) Keys(ctx context.Context, tenant string) ([]StoredKey, error) {
	var out struct {
		Data []StoredKey `json:"data"`
	}
	err := a.c.do(ctx, http.MethodGet, "/admin/tenants/"+url.PathEscape(tenant)+"/keys", nil, &out)
	return out.Data, err
}

// RevokeKey revokes a key: it fails with 401 from then on, and portal
// sessions signed in with it end.
func (a *Admin) RevokeKey(ctx context.Context, tenant, keyID string) error {
	return a.c.do(ctx, http.MethodDelete, "/admin/tenants/"+url.PathEscape(tenant)+"/keys/"+url.PathEscape(keyID), nil, nil)
}

// PortalLink mints a one-time sign-in link into the tenant portal.
func (a *Admin) PortalLink(ctx context.Context, tenant string) (PortalLink, error) {
	var out PortalLink
	err := a.c.do(ctx, http.MethodPost, "/admin/tenants/"+url.PathEscape(tenant)+"/portal-sessions", nil, &out)
	return out, err
}

// EndPortalSessions signs every portal session of a tenant out and
// returns how many ended.
func (a *Admin) EndPortalSessions(ctx context.Context, tenant string) (int, error) {
	var out struct {
		Ended int `json:"ended"`
	}
	err := a.c.do(ctx, http.MethodDelete, "/admin/tenants/"+url.PathEscape(tenant)+"/portal-sessions", nil, &out)
	return out.Ended, err
}
