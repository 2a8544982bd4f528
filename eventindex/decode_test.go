package eventindex

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/onestack/webhooks/events"
)

func TestCanonicalTime(t *testing.T) {
	at := time.Date(2026, 12, 3, 9, 45, 1, 123456789, time.UTC)
	e := events.Event{ID: "evt_1", Type: "ticket.updated", TenantID: "ten_a", OccurredAt: at, Data: []byte(`{"occurredAt":"2000-01-01T00:00:00Z"}`)}
	tests := []struct {
		name   string
		body   string
		want   time.Time
		wantOK bool
	}{
		{"as Marshal writes it", string(e.Marshal()), at, true},
		{"keys in another order", `{"type":"ticket.updated","id":"evt_1","tenantId":"ten_a","occurredAt":"2026-12-03T09:45:01Z","data":{}}`, time.Time{}, false},
		{"an escape in a string", `{"id":"e\"vt","type":"t","tenantId":"ten_a","occurredAt":"2026-12-03T09:45:01Z","data":{}}`, time.Time{}, false},
		{"no data key", `{"id":"evt_1","type":"t","tenantId":"ten_a","occurredAt":"2026-12-03T09:45:01Z"}`, time.Time{}, false},
		{"not a time", `{"id":"evt_1","type":"t","tenantId":"ten_a","occurredAt":"yesterday","data":{}}`, time.Time{}, false},
		{"truncated", `{"id":"evt_1","type":"t","ten`, time.Time{}, false},
		{"empty", ``, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := canonicalTime([]byte(tt.body))
			if ok != tt.wantOK || !got.Equal(tt.want) {
				t.Errorf("canonicalTime(%s) = %v, %v; want %v, %v", tt.body, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// FuzzCanonicalTime: whenever the quick read of a body succeeds, it reads
// the time JSON decoding does, and it never panics.
func FuzzCanonicalTime(f *testing.F) {
	e := events.Event{ID: "evt_1", Type: "ticket.updated", TenantID: "ten_a", OccurredAt: time.Now(), Data: []byte(`{"a":1}`)}
	f.Add(e.Marshal())
	f.Add([]byte(`{"id":"x","type":"y","tenantId":"z","occurredAt":"2026-01-01T00:00:00+02:00","data":{}}`))
	f.Add([]byte(`{"id":"","type":"","tenantId":"","occurredAt":"","data":`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, ok := canonicalTime(body)
		if !ok || bytes.Count(body, []byte(`"occurredAt"`)) > 1 {
			return // a key repeated after data (Marshal never writes one) is read first here, last by JSON
		}
		var env struct {
			OccurredAt time.Time `json:"occurredAt"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			return // the body's data is not JSON: the index reads the time all the same
		}
		if !env.OccurredAt.Equal(got) {
			t.Fatalf("canonicalTime(%q) = %v, JSON reads %v", body, got, env.OccurredAt)
		}
	})
}
