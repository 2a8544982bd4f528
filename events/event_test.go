package events

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// TestEventIDProblems: an id is 1..64 letters, digits, '_' or '-', and not
// "batch", which GET /api/events/batch could never read (that path is the
// batch route).
func TestEventIDProblems(t *testing.T) {
	c := DefaultCatalog()
	tests := []struct {
		id      string
		wantErr error
	}{
		{"evt_01J", nil},
		{"order-1", nil},
		{"Batch", nil},
		{"batches", nil},
		{"batch_1", nil},
		{strings.Repeat("a", 64), nil},
		{"batch", ErrReservedID},
		{"", ErrInvalidID},
		{strings.Repeat("a", 65), ErrInvalidID},
		{"a.b", ErrInvalidID},
		{"a/b", ErrInvalidID},
	}
	for _, tt := range tests {
		e := Event{ID: tt.id, Type: "ticket.updated", TenantID: "ten_1", OccurredAt: time.Now(), Data: []byte(`{}`)}
		var got error
		for _, p := range e.Problems(c) {
			if p.Field != "id" {
				t.Errorf("id %q: problem %v, want none but on id", tt.id, p)
				continue
			}
			got = p.Err
		}
		if !errors.Is(got, tt.wantErr) || (got == nil) != (tt.wantErr == nil) {
			t.Errorf("Problems(id %q) on id = %v, want %v", tt.id, got, tt.wantErr)
		}
	}
}

func TestNewIDWithPrefix(t *testing.T) {
	for _, prefix := range []string{IDPrefix, "req_", "", "a_prefix_longer_than_the_buffer_"} {
		a, b := NewIDWithPrefix(prefix), NewIDWithPrefix(prefix)
		rest, ok := strings.CutPrefix(a, prefix)
		if !ok || len(rest) != ulid.EncodedSize || a == b {
			t.Errorf("NewIDWithPrefix(%q) = %q then %q, want the prefix and %d characters, fresh each time", prefix, a, b, ulid.EncodedSize)
			continue
		}
		if _, err := ulid.ParseStrict(rest); err != nil {
			t.Errorf("NewIDWithPrefix(%q) = %q: %v", prefix, a, err)
		}
	}
	if id := NewID(); !ValidID(id) || !strings.HasPrefix(id, IDPrefix) {
		t.Errorf("NewID() = %q, want a valid id starting %q", id, IDPrefix)
	}
}
