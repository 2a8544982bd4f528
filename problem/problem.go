// Package problem is the vocabulary of the errors the API answers. Each
// kind is a sentinel (ErrNotFound, ErrConflict, ErrInProgress,
// ErrChanged, ErrUnavailable) that errors of the kind match with
// errors.Is; the
// errors that carry more than their kind are types: ValidationError (the
// fields at fault) and RateLimitedError (the budget and when to retry). A
// tenant past one of its limits is limits.ExceededError, which the limits
// policy builds.
//
// Stores and use cases return these, or wrap them with context; the api
// package alone turns them into a status, a code and a body. The package
// imports nothing of the project.
package problem

import (
	"errors"
	"fmt"
	"strings"
)

// The kinds of error the API answers.
var (
	// ErrNotFound: no such resource for this tenant (404 NOT_FOUND).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request collides with what exists, such as a name
	// already taken (409 CONFLICT).
	ErrConflict = errors.New("conflict")
	// ErrInProgress: the first request with the same idempotency key is
	// still running (409 IDEMPOTENCY_KEY_IN_USE, Retry-After: 1).
	ErrInProgress = errors.New("in progress")
	// ErrChanged: the record changed since the revision (ETag) the caller
	// read (412 PRECONDITION_FAILED).
	ErrChanged = errors.New("changed since read")
	// ErrUnavailable: a dependency (NATS, a store, an index) cannot be
	// reached now; a retry later may succeed (503 UNAVAILABLE).
	ErrUnavailable = errors.New("dependency unavailable")
)

// Error is an error of one kind with its own message, which says what
// it is about ("delivery not found"); the API answers a not-found, a
// conflict or a request in progress with that message. Compare one with errors.Is, by its kind or
// by the value itself.
type Error struct {
	kind error
	msg  string
}

// New returns an error of kind (one of the kinds above) whose message is
// msg: errors.Is(New(kind, msg), kind) holds.
func New(kind error, msg string) *Error { return &Error{kind: kind, msg: msg} }

// NotFound returns an error of kind ErrNotFound saying "<what> not found".
func NotFound(what string) *Error { return New(ErrNotFound, what+" not found") }

func (e *Error) Error() string { return e.msg }

// Is reports whether target is e's kind.
func (e *Error) Is(target error) bool { return target == e.kind }

// ErrInvalidCursor refuses a cursor the API did not return, or whose
// place no longer exists.
var ErrInvalidCursor = Invalid("cursor", "is not a cursor this API returned")

// FieldError is one problem with one field of a request.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// ValidationError lists every problem found in a request (400
// VALIDATION_FAILED, the fields in details.fields).
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Reason
	}
	return "validation failed: " + strings.Join(parts, "; ")
}

// Invalid returns a ValidationError about one field.
func Invalid(field, reason string) *ValidationError {
	return &ValidationError{Fields: []FieldError{{Field: field, Reason: reason}}}
}

// RateLimitedError refuses a request past its budget of requests a
// minute (429 RATE_LIMIT_EXCEEDED, with Retry-After and details
// {limit, window, retryAfter}).
type RateLimitedError struct {
	// Limit is the budget of requests a minute.
	Limit int
	// RetryAfter is the seconds until the budget comes back.
	RetryAfter int
}

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("rate limit of %d requests a minute exceeded; retry after %d s", e.Limit, e.RetryAfter)
}
