package events

import (
	"errors"
	"strings"
	"testing"
	"time"
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
