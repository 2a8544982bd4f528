package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/dispatcher"
	"github.com/onestack/webhooks/eventindex"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/idempotency"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/limits"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/subscriptions"
)

// TestAnswer checks the one error mapping: each error the stores, the
// engine and the API itself return, wrapped with context, is answered
// with its status, code, message, details and Retry-After.
func TestAnswer(t *testing.T) {
	unavailable := &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "a dependency is unavailable; retry later", RetryAfter: 5}
	notFound := func(msg string) *Error { return &Error{Status: http.StatusNotFound, Code: CodeNotFound, Message: msg} }
	own := &Error{Status: http.StatusTeapot, Code: "OWN", Message: "answered as it is"}
	for _, tc := range []struct {
		name string
		err  error
		want *Error
	}{
		{"the API's own answer", own, own},
		{"validation", &subscriptions.ValidationError{Fields: []subscriptions.FieldError{{Field: "url", Reason: "is required"}}},
			&Error{Status: http.StatusBadRequest, Code: CodeValidationFailed, Message: "the request is not valid",
				Details: map[string]any{"fields": []problem.FieldError{{Field: "url", Reason: "is required"}}}}},
		{"a registry's validation", &events.ValidationError{Problems: []*events.FieldError{{Field: "type", Err: events.ErrRequired}}},
			&Error{Status: http.StatusBadRequest, Code: CodeValidationFailed, Message: "the request is not valid",
				Details: map[string]any{"fields": []problem.FieldError{{Field: "type", Reason: "is required"}}}}},
		{"a delivery log cursor", fmt.Errorf("list: %w: %w", deliverylog.ErrInvalid, problem.ErrInvalidCursor),
			&Error{Status: http.StatusBadRequest, Code: CodeValidationFailed, Message: "the request is not valid",
				Details: map[string]any{"fields": []problem.FieldError{{Field: "cursor", Reason: "is not a cursor this API returned"}}}}},
		{"quota", limits.Check(limits.Subscriptions, 2, 2, 3),
			&Error{Status: http.StatusForbidden, Code: CodeQuotaExceeded,
				Message: "this would bring the tenant's subscriptions to 3, over its limit of 2 (it has 2); delete a subscription, or ask the operator for a higher limit",
				Details: map[string]any{"limit": limits.Subscriptions, "max": int64(2), "used": int64(2)}}},
		{"event bytes", limits.CheckEventBytes(10, 11),
			&Error{Status: http.StatusRequestEntityTooLarge, Code: CodePayloadTooLarge,
				Message: "the event's data is 11 bytes, over the tenant's eventBytes limit of 10; send less data, or ask the operator for a higher limit",
				Details: map[string]any{"limit": limits.EventBytes, "max": int64(10), "used": int64(11)}}},
		{"rate limited", &problem.RateLimitedError{Limit: 100, RetryAfter: 23},
			&Error{Status: http.StatusTooManyRequests, Code: CodeRateLimitExceeded, Message: "Rate limit exceeded",
				Details: rateLimitDetails{Limit: 100, Window: "1m", RetryAfter: 23}, RetryAfter: 23}},
		{"subscription, tenant or key", subscriptions.ErrNotFound, notFound("resource not found")},
		{"delivery", deliverylog.ErrNotFound, notFound("delivery not found")},
		{"a Deliveries' delivery", ErrDeliveryNotFound, notFound("delivery not found")},
		{"event gone", dispatcher.ErrEventGone, notFound("the event of this delivery is no longer retained")},
		{"event", eventindex.ErrNotFound, notFound("event not found")},
		{"an EventLog's event", ErrEventNotFound, notFound("event not found")},
		{"job", jobs.ErrNotFound, notFound("job not found")},
		{"a Recovery's job", ErrJobNotFound, notFound("job not found")},
		{"subscription gone under a job", jobs.Permanent(dispatcher.ErrSubscriptionGone), notFound("resource not found")},
		{"event type", events.ErrTypeNotFound, notFound("event type not found")},
		{"event type taken", events.ErrTypeExists,
			&Error{Status: http.StatusConflict, Code: CodeConflict, Message: "an event type of that name already exists; change it with PATCH"}},
		{"idempotency key reused", idempotency.ErrMismatch,
			&Error{Status: http.StatusConflict, Code: CodeConflict, Message: "this Idempotency-Key was used with a different request"}},
		{"idempotency key in use", idempotency.ErrInProgress,
			&Error{Status: http.StatusConflict, Code: CodeIdempotencyKeyInUse, Message: "the first request with this Idempotency-Key is still running; retry later", RetryAfter: 1}},
		{"changed since read", subscriptions.ErrConflict,
			&Error{Status: http.StatusPreconditionFailed, Code: CodePreconditionFailed, Message: "If-Match does not match the current ETag"}},
		{"subscriptions down", subscriptions.ErrUnavailable, unavailable},
		{"delivery log down", deliverylog.ErrUnavailable, unavailable},
		{"event index down", eventindex.ErrUnavailable, unavailable},
		{"jobs down", jobs.ErrUnavailable, unavailable},
		{"registry down", events.ErrUnavailable, unavailable},
		{"publish", events.ErrPublish, unavailable},
		{"idempotency down", idempotency.ErrUnavailable, unavailable},
		{"a Deliveries' dependency", ErrUnavailable, unavailable},
		{"deadline", context.DeadlineExceeded, unavailable},
		{"anything else", errors.New("boom"), &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := answer(fmt.Errorf("doing it: %w", tc.err))
			if diff := cmp.Diff(tc.want, got, cmpopts.IgnoreUnexported(Error{})); diff != "" {
				t.Errorf("answer(%v) (-want +got):\n%s", tc.err, diff)
			}
		})
	}
}

// TestAnswerKeepsTheCause checks that what is logged with an answer, an
// unavailable dependency's or an unexpected error's, is the error itself.
func TestAnswerKeepsTheCause(t *testing.T) {
	for _, err := range []error{fmt.Errorf("read: %w", deliverylog.ErrUnavailable), errors.New("boom")} {
		if got := answer(err).cause; got != err {
			t.Errorf("answer(%v).cause = %v, want the error", err, got)
		}
	}
	if got := answer(subscriptions.ErrNotFound).cause; got != nil {
		t.Errorf("answer(not found).cause = %v, want none", got)
	}
}
