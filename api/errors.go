package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/problem"
)

// Error codes of the API's error shape.
const (
	CodeInvalidJSON          = "INVALID_JSON"
	CodeValidationFailed     = "VALIDATION_FAILED"
	CodeUnauthorized         = "UNAUTHORIZED"
	CodeNotFound             = "NOT_FOUND"
	CodeMethodNotAllowed     = "METHOD_NOT_ALLOWED"
	CodeConflict             = "CONFLICT"
	CodeIdempotencyKeyInUse  = "IDEMPOTENCY_KEY_IN_USE"
	CodeQuotaExceeded        = "QUOTA_EXCEEDED"
	CodePreconditionFailed   = "PRECONDITION_FAILED"
	CodePayloadTooLarge      = "PAYLOAD_TOO_LARGE"
	CodeUnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
	CodeRateLimitExceeded    = "RATE_LIMIT_EXCEEDED"
	CodeInternal             = "INTERNAL"
	CodeUnavailable          = "UNAVAILABLE"
)

// Error is an answer in the API's error shape.
type Error struct {
	Status  int    `json:"-"`
	Message string `json:"error"`
	Code    string `json:"code"`
	// Details is a map of what the code says more, or a struct when the
	// contract fixes the order of its keys.
	Details any `json:"details,omitempty"`
	// RetryAfter, in seconds, is sent as a Retry-After header when set.
	RetryAfter int `json:"-"`
	// cause, when set, is logged with the answer (never sent).
	cause error
	// header, when set, is sent with the answer.
	header http.Header
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func errNotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: what + " not found"}
}

func errUnauthorized() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "missing, malformed, unknown or revoked API key"}
}

func errInvalidJSON(msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidJSON, Message: msg}
}

func errPrecondition() *Error {
	return &Error{Status: http.StatusPreconditionFailed, Code: CodePreconditionFailed, Message: "If-Match does not match the current ETag"}
}

// errExceeded answers a request that would pass a tenant's limit: 403
// QUOTA_EXCEEDED, or 413 PAYLOAD_TOO_LARGE for an event's size, with
// details {limit, max, used}.
func errExceeded(qe *limits.ExceededError) *Error {
	e := &Error{Status: http.StatusForbidden, Code: CodeQuotaExceeded, Message: qe.Error(),
		Details: map[string]any{"limit": qe.Limit, "max": qe.Max, "used": qe.Used}}
	if qe.Limit == limits.EventBytes {
		e.Status, e.Code = http.StatusRequestEntityTooLarge, CodePayloadTooLarge
	}
	if h, ok := exceededHints[qe.Limit]; ok {
		e.Message += "; " + h + ", or ask the operator for a higher limit"
	}
	return e
}

// exceededHints say what a tenant past a limit can do about it.
var exceededHints = map[string]string{
	limits.Subscriptions: "delete a subscription",
	limits.EventTypes:    "name only types its subscriptions already name",
	limits.EventBytes:    "send less data",
	limits.StoredBytes:   "wait for older events to leave the store at the end of their retention",
	limits.Jobs:          "wait for a running job to end",
}

// unavailableRetryAfter is the Retry-After sent with 503 UNAVAILABLE.
const unavailableRetryAfter = 5

// inProgressRetryAfter is the Retry-After sent with 409
// IDEMPOTENCY_KEY_IN_USE.
const inProgressRetryAfter = 1

// answer turns err into the API's answer: the one place an error becomes
// a status, a code and a body. An *Error is answered as it is; the
// problem vocabulary's kinds and types, and limits' *ExceededError, by
// this table; anything else is 500 INTERNAL, without internals. An
// unavailable dependency's answer keeps err as its cause, to be logged.
func answer(err error) *Error {
	var e *Error
	var rl *problem.RateLimitedError
	var qe *limits.ExceededError
	var ve *problem.ValidationError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &rl):
		return &Error{Status: http.StatusTooManyRequests, Code: CodeRateLimitExceeded, Message: "Rate limit exceeded",
			Details: rateLimitDetails{Limit: rl.Limit, Window: "1m", RetryAfter: rl.RetryAfter}, RetryAfter: rl.RetryAfter}
	case errors.As(err, &qe):
		return errExceeded(qe)
	case errors.As(err, &ve):
		return &Error{Status: http.StatusBadRequest, Code: CodeValidationFailed, Message: "the request is not valid",
			Details: map[string]any{"fields": ve.Fields}}
	case errors.Is(err, problem.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: message(err, problem.ErrNotFound, "resource not found")}
	case errors.Is(err, problem.ErrConflict):
		return &Error{Status: http.StatusConflict, Code: CodeConflict, Message: message(err, problem.ErrConflict, "conflict")}
	case errors.Is(err, problem.ErrInProgress):
		return &Error{Status: http.StatusConflict, Code: CodeIdempotencyKeyInUse, Message: message(err, problem.ErrInProgress, "in progress"),
			RetryAfter: inProgressRetryAfter}
	case errors.Is(err, problem.ErrChanged):
		return errPrecondition()
	case isUnavailable(err):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "a dependency is unavailable; retry later",
			RetryAfter: unavailableRetryAfter, cause: err}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error", cause: err}
}

// rateLimitDetails are a 429's details, in spec/rate-limits.md's order.
type rateLimitDetails struct {
	Limit      int    `json:"limit"`
	Window     string `json:"window"`
	RetryAfter int    `json:"retryAfter"`
}

// message is what the API says of err, of kind: the message of the
// *problem.Error it holds, when that is of kind, else otherwise.
func message(err, kind error, otherwise string) string {
	var pe *problem.Error
	if errors.As(err, &pe) && errors.Is(pe, kind) {
		return pe.Error()
	}
	return otherwise
}

// isUnavailable reports whether err means a dependency (NATS, a store, an
// index) could not be reached, or did not answer in time.
func isUnavailable(err error) bool {
	return errors.Is(err, problem.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// writeError answers err in the error shape (see answer). An unexpected
// error is logged here, once, at Error; an unavailable dependency at
// Warn.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := answer(err)
	switch {
	case e.Code == CodeInternal && e.cause != nil:
		a.logger.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", e.cause)
	case e.cause != nil:
		a.logger.Warn("dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", e.cause)
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	for k, v := range e.header {
		w.Header()[k] = v
	}
	writeJSON(w, e.Status, e)
}
