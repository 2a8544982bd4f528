package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/onestack/webhooks/idempotency"
)

const (
	idempotencyHeader = "Idempotency-Key"
	maxIdempotencyKey = 255
)

// Bounds on idempotent work that outlives its request.
const (
	// idempotentRunTimeout bounds a handler run with an Idempotency-Key,
	// which a client's disconnect does not cut short: a half-done create
	// would otherwise leave no answer to replay.
	idempotentRunTimeout = 30 * time.Second
	// idempotencyBookkeeping bounds storing or releasing a claim.
	idempotencyBookkeeping = 5 * time.Second
)

// serveIdempotent runs a POST made with an Idempotency-Key: the first
// request with a key runs and its answer is kept; a repeat with the same
// method, path and body gets that answer again (same status, same body);
// one with a different request gets 409 CONFLICT. A repeat that arrives
// while the first still runs waits for its answer, so it never creates a
// second resource; past the wait it gets 409 IDEMPOTENCY_KEY_IN_USE with
// Retry-After: 1. Answers of 5xx and 403 (a tenant's limit, which may
// have room by the repeat) are not kept: the claim is released and a
// repeat runs again.
//
// Once claimed, the request runs to its end even if the client goes away,
// and the answer is stored (or the claim released) on a context of its
// own: a disconnect never leaves a claim behind without an answer.
func (a *API) serveIdempotent(w http.ResponseWriter, r *http.Request, c *caller, rt route) {
	key := r.Header.Get(idempotencyHeader)
	if len(key) > maxIdempotencyKey {
		a.writeError(w, r, invalidHeader(idempotencyHeader, "must be at most 255 characters"))
		return
	}
	// Read the body once to fingerprint it, then hand it to the handler,
	// which applies its own size limit (a body over it is answered 413 and
	// not kept).
	body, err := io.ReadAll(io.LimitReader(r.Body, a.cfg.MaxBody+1))
	if err != nil {
		a.writeError(w, r, errInvalidJSON("could not read the request body"))
		return
	}
	r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
	if int64(len(body)) > a.cfg.MaxBody {
		a.serve(w, r, c, rt)
		return
	}
	fp := idempotency.Fingerprint([]byte(r.Method), []byte(r.URL.Path), body)
	// A claim written as the client hangs up must still come back to this
	// request, to be finished or released: claiming runs on a context the
	// client cannot cancel (the store bounds its own wait).
	beginCtx, cancelBegin := context.WithTimeout(context.WithoutCancel(r.Context()), idempotentRunTimeout)
	defer cancelBegin()
	replay, claim, err := a.cfg.Idempotency.Begin(beginCtx, c.tenant, key, fp)
	switch {
	case err != nil:
		a.writeError(w, r, err)
		return
	case replay != nil:
		for k, v := range replay.Header {
			w.Header().Set(k, v)
		}
		w.Header().Set("Idempotent-Replayed", "true")
		w.WriteHeader(replay.Status)
		w.Write(replay.Body)
		return
	}

	runCtx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), idempotentRunTimeout)
	defer cancel()
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	answered := false
	defer func() {
		// However the handler ended, the claim is settled on a context
		// the client cannot cancel.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), idempotencyBookkeeping)
		defer cancel()
		if !answered || rec.status >= 500 || rec.status == http.StatusForbidden {
			if err := claim.Abandon(ctx); err != nil {
				a.logger.Warn("release idempotency key", "err", err)
			}
			return
		}
		ans := idempotency.Answer{Status: rec.status, Body: rec.body.Bytes(), Header: map[string]string{}}
		// A replay repeats these headers; the others (request id,
		// rate-limit headers) belong to the repeat itself.
		for _, h := range [...]string{"Content-Type", "Location", "ETag"} {
			if v := w.Header().Get(h); v != "" {
				ans.Header[h] = v
			}
		}
		if err := claim.Finish(ctx, ans); err != nil {
			a.logger.Warn("store idempotent answer", "err", err)
		}
	}()
	a.serve(rec, r.WithContext(runCtx), c, rt)
	answered = true
}

// recorder passes an answer through and keeps a copy of it.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func invalidHeader(name, reason string) error {
	return &Error{Status: http.StatusBadRequest, Code: CodeValidationFailed, Message: "the request is not valid",
		Details: map[string]any{"fields": []map[string]string{{"field": name, "reason": reason}}}}
}
