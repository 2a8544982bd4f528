package api

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/subscriptions"
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
	Status  int            `json:"-"`
	Message string         `json:"error"`
	Code    string         `json:"code"`
	Details map[string]any `json:"details,omitempty"`
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

// writeError answers err in the error shape. Known errors map to their
// status; anything else is logged here, once, and answered 500 without
// internals.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	var ve *problem.ValidationError
	var qe *limits.ExceededError
	switch {
	case errors.As(err, &e):
		if e.cause != nil {
			a.logger.Warn("dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", e.cause)
		}
	case errors.As(err, &qe):
		e = errExceeded(qe)
	case errors.As(err, &ve):
		e = &Error{Status: http.StatusBadRequest, Code: CodeValidationFailed, Message: "the request is not valid",
			Details: map[string]any{"fields": ve.Fields}}
	case errors.Is(err, subscriptions.ErrNotFound):
		e = errNotFound("resource")
	case errors.Is(err, subscriptions.ErrConflict):
		e = errPrecondition()
	case errors.Is(err, subscriptions.ErrUnavailable), isUnavailable(err):
		a.logger.Warn("dependency unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "a dependency is unavailable; retry later", RetryAfter: unavailableRetryAfter}
	default:
		a.logger.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
		e = &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	for k, v := range e.header {
		w.Header()[k] = v
	}
	writeJSON(w, e.Status, e)
}
