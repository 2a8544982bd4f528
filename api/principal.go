package api

import (
	"context"
	"net/http"
)

// Principal is a tenant that a trusted caller in the same process has
// already authenticated, such as the tenant portal acting for a signed-in
// session. A request carrying one in its context is served as that tenant
// without a bearer key: same validation, same isolation, same rate-limit
// budget and headers as any API request.
type Principal struct {
	// Tenant is the tenant's id.
	Tenant string
	// KeyID, when set, is the API key the caller signed in with: the
	// request is refused 401 once that key is revoked.
	KeyID string
}

type principalKey struct{}

// AsTenant returns a context that makes the API serve a request as p.
// Only code in the process can set a context value, so no HTTP client can
// forge one; the caller vouches for p.
func AsTenant(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// authenticate returns the tenant a request acts for: the Principal a
// trusted caller attached, while its tenant (and key, if named) still
// stands, or else the owner of its bearer key (looked up in storage when
// this replica has not seen the key yet). A bearer key refused is a 401
// returned as err, counted against the request's address; an address past
// its failures gets the 429 instead, and only a key this replica holds
// passes it (no storage is read for it). err is otherwise set only when
// storage cannot be read.
func (a *API) authenticate(r *http.Request) (string, bool, error) {
	if p, ok := r.Context().Value(principalKey{}).(Principal); ok {
		idx := a.cfg.Store.Index()
		if _, found := idx.Tenant(p.Tenant); !found || p.Tenant == "" {
			return "", false, nil
		}
		if p.KeyID != "" {
			if owner, found := idx.KeyOwner(p.KeyID); !found || owner != p.Tenant {
				return "", false, nil
			}
		}
		return p.Tenant, true, nil
	}
	key, ok := bearer(r)
	if !ok {
		return "", false, a.failed(r, refusedNoCredentials, errUnauthorized())
	}
	if ten, _, ok := a.cfg.Store.Index().Authenticate(key); ok {
		return ten, true, nil
	}
	if e := a.tooManyFailures(r); e != nil {
		return "", false, e
	}
	ten, _, ok, err := a.cfg.Store.Authenticate(r.Context(), key)
	if err != nil {
		return "", false, err
	}
	if !ok {
		return "", false, a.failed(r, refusedBadCredentials, errUnauthorized())
	}
	return ten, true, nil
}
