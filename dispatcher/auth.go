package dispatcher

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/subscriptions"
)

// send sends req to sub's endpoint, authenticated as the subscription
// says. Without auth it is the shared transport's round trip, nothing
// more. With oauth2 the request carries the cached bearer token (fetched
// first if there is none); when the endpoint answers 401 to a cached
// token, that token is dropped and the request is sent once more, within
// the same attempt, with a fresh one: the second answer is the attempt's
// (a 401 to it drops that token too).
// With mtls the request goes through the transport presenting the
// subscription's client certificate. A token that cannot be had is an
// *endpointauth.TokenError.
func (d *Dispatcher) send(ctx context.Context, sub *subscriptions.Subscription, req *http.Request) (*http.Response, error) {
	auth := sub.Auth()
	if auth == nil {
		return d.client.Transport.RoundTrip(req)
	}
	p, err := d.auth.Prepare(ctx, sub.ID, auth, req)
	if err != nil {
		return nil, err
	}
	resp, err := d.roundTrip(p, req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !d.auth.Rejected(sub.ID, p) {
		return resp, err
	}
	_, _ = io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
	again := req.Clone(ctx)
	if again.Body, err = req.GetBody(); err != nil {
		return nil, err
	}
	if p, err = d.auth.Prepare(ctx, sub.ID, auth, again); err != nil {
		return nil, err
	}
	resp, err = d.roundTrip(p, again)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		d.auth.Rejected(sub.ID, p) // the fresh token refused too: not sent again
	}
	return resp, err
}

func (d *Dispatcher) roundTrip(p endpointauth.Prepared, req *http.Request) (*http.Response, error) {
	if p.Transport != nil {
		return p.Transport.RoundTrip(req)
	}
	return d.client.Transport.RoundTrip(req)
}

// isTokenError reports whether err is a failure to get an OAuth2 token:
// the token endpoint's trouble, which says nothing of the destination.
func isTokenError(err error) bool {
	var te *endpointauth.TokenError
	return errors.As(err, &te)
}
