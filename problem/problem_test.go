package problem

import (
	"errors"
	"fmt"
	"testing"
)

// TestKinds checks that an error made of a kind matches that kind, and
// itself, through any wrapping, and no other kind.
func TestKinds(t *testing.T) {
	kinds := []error{ErrNotFound, ErrConflict, ErrChanged, ErrUnavailable}
	for _, kind := range kinds {
		e := New(kind, "something")
		err := fmt.Errorf("load it: %w", e)
		for _, other := range kinds {
			if got, want := errors.Is(err, other), other == kind; got != want {
				t.Errorf("errors.Is(New(%v), %v) = %v, want %v", kind, other, got, want)
			}
		}
		if !errors.Is(err, e) {
			t.Errorf("errors.Is(wrapped, New(%v)) = false, want true", kind)
		}
		if errors.Is(err, New(kind, "something")) {
			t.Errorf("errors.Is(wrapped, another New(%v)) = true, want false", kind)
		}
	}
}

func TestMessages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{NotFound("delivery"), "delivery not found"},
		{New(ErrUnavailable, "store unavailable"), "store unavailable"},
		{Invalid("cursor", "is not a cursor this API returned"), "validation failed: cursor: is not a cursor this API returned"},
		{&ValidationError{Fields: []FieldError{{"a", "is required"}, {"b", "is too long"}}}, "validation failed: a: is required; b: is too long"},
		{&RateLimitedError{Limit: 100, RetryAfter: 7}, "rate limit of 100 requests a minute exceeded; retry after 7 s"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("%#v.Error() = %q, want %q", tc.err, got, tc.want)
		}
	}
}
