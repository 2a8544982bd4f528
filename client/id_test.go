package client

import (
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// TestNewEventIDIsAULID: the client's ids are what the server makes: evt_
// and a valid ULID of the current time, distinct and sortable.
func TestNewEventIDIsAULID(t *testing.T) {
	before := time.Now().Add(-time.Millisecond)
	prev := ""
	for range 1000 {
		id := NewEventID()
		u, err := ulid.ParseStrict(strings.TrimPrefix(id, "evt_"))
		if err != nil || !strings.HasPrefix(id, "evt_") {
			t.Fatalf("NewEventID() = %q: %v", id, err)
		}
		if at := ulid.Time(u.Time()); at.Before(before) || at.After(time.Now().Add(time.Millisecond)) {
			t.Fatalf("NewEventID() = %q holds time %v, want now", id, at)
		}
		if id == prev {
			t.Fatalf("NewEventID() repeated %q", id)
		}
		prev = id
	}
}
