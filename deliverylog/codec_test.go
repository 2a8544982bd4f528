package deliverylog

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	testTenant = "ten_01JZ8X2Q4M7T3V9W5Y6B1C2D3E"
	testSub    = "sub_01JZ8X2Q4M7T3V9W5Y6B1C2D3F"
	testDlv    = "dlv_01JZ8X3A5B6C7D8E9F0G1H2J3K" + "01JZ8X2Q4M7T3V9W5Y6B1C2D3F"
)

// happyRecord is the commonest record: a first attempt that succeeded.
func happyRecord() Record {
	created := time.Date(2025, 7, 1, 12, 0, 0, 123456789, time.UTC)
	return Record{
		DeliveryID:     testDlv,
		TenantID:       testTenant,
		SubscriptionID: testSub,
		EventID:        "evt_01JZ8X3A5B6C7D8E9F0G1H2J3M",
		EventType:      "ticket.updated",
		EventSeq:       1_234_567,
		CreatedAt:      created,
		Status:         StatusSucceeded,
		Attempt: &Attempt{
			N:            1,
			At:           created.Add(3 * time.Millisecond),
			StatusCode:   200,
			DurationMs:   42,
			ResponseBody: `{"ok":true}`,
		},
	}
}

func TestRecordRoundTrip(t *testing.T) {
	next := time.Date(2025, 7, 1, 12, 5, 0, 0, time.UTC)
	long := strings.Repeat("é", MaxResponseExcerpt) // 2 bytes a rune
	tests := []struct {
		name string
		edit func(r *Record)
		want func(r *Record) // the record as decoded, if not r
	}{
		{name: "happy path", edit: func(*Record) {}},
		{name: "failed with retry", edit: func(r *Record) {
			r.Status = StatusPending
			r.Attempt.StatusCode = 503
			r.Attempt.Error = "HTTP 503"
			r.NextAttemptAt = &next
		}},
		{name: "attempt with its trace id", edit: func(r *Record) {
			r.Attempt.TraceID = [16]byte{0x4b, 0xf9, 0x2f, 0x35, 15: 0x36}
		}},
		{name: "skipped, no attempt", edit: func(r *Record) {
			r.Status, r.Attempt = StatusSkipped, nil
		}},
		{name: "manual retry requested", edit: func(r *Record) {
			r.Status, r.Attempt, r.Manual, r.NextAttemptAt = StatusPending, nil, true, &next
		}},
		{name: "connection error", edit: func(r *Record) {
			r.Status = StatusFailed
			r.Attempt.N, r.Attempt.StatusCode, r.Attempt.Error, r.Attempt.ResponseBody = 8, 0, "dial tcp: connection refused", ""
		}},
		{name: "times in another zone, before the id's time", edit: func(r *Record) {
			r.CreatedAt = r.CreatedAt.In(time.FixedZone("X", 3600)).Add(-48 * time.Hour)
			r.Attempt.At = r.CreatedAt.Add(-time.Nanosecond)
		}},
		{name: "event id not a ULID", edit: func(r *Record) { r.EventID = "evt_1" }},
		{name: "lower-case event ULID kept as written", edit: func(r *Record) { r.EventID = strings.ToLower(r.EventID) }},
		{name: "subscription id left out", edit: func(r *Record) { r.SubscriptionID = "" },
			want: func(r *Record) { r.SubscriptionID = testSub }},
		{name: "long texts cut at a rune", edit: func(r *Record) {
			r.Attempt.ResponseBody, r.Attempt.Error = long, long+"x"
		}, want: func(r *Record) {
			r.Attempt.ResponseBody, r.Attempt.Error = long[:MaxResponseExcerpt], long[:MaxResponseExcerpt]
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := happyRecord()
			tt.edit(&r)
			want := r
			if r.Attempt != nil {
				a := *r.Attempt
				want.Attempt = &a
			}
			if tt.want != nil {
				tt.want(&want)
			}
			k, err := prepare(&r)
			if err != nil {
				t.Fatalf("prepare: %v", err)
			}
			data := appendRecord([]byte{batchV1}, k, &r)
			got, err := decodeBatch(testTenant, data, nil)
			if err != nil {
				t.Fatalf("decodeBatch: %v", err)
			}
			if diff := cmp.Diff([]Record{want}, got); diff != "" {
				t.Errorf("decodeBatch(appendRecord(r)) mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestHappyRecordSize keeps the commonest record compact: the stream's
// bytes per record are this plus the message's overhead shared by a batch.
func TestHappyRecordSize(t *testing.T) {
	r := happyRecord()
	k, err := prepare(&r)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(appendRecord(nil, k, &r)); n > 110 {
		t.Errorf("happy-path record encodes to %d bytes, want <= 110", n)
	}
}

func TestPrepareRefuses(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *Record)
	}{
		{"no delivery id", func(r *Record) { r.DeliveryID = "" }},
		{"short delivery id", func(r *Record) { r.DeliveryID = testDlv[:len(testDlv)-1] }},
		{"lower-case delivery id", func(r *Record) { r.DeliveryID = strings.ToLower(testDlv[:4]) + strings.ToLower(testDlv[4:]) }},
		{"bad ULID", func(r *Record) { r.DeliveryID = "dlv_" + strings.Repeat("U", 52) }},
		{"other subscription", func(r *Record) { r.SubscriptionID = "sub_01JZ8X2Q4M7T3V9W5Y6B1C2D3G" }},
		{"no tenant", func(r *Record) { r.TenantID = "" }},
		{"tenant with a dot", func(r *Record) { r.TenantID = "ten.a" }},
		{"tenant with a wildcard", func(r *Record) { r.TenantID = "ten_>" }},
		{"long event type", func(r *Record) { r.EventType = strings.Repeat("a", MaxIDLen+1) }},
		{"unknown status", func(r *Record) { r.Status = "done" }},
		{"no creation time", func(r *Record) { r.CreatedAt = time.Time{} }},
		{"creation time out of range", func(r *Record) { r.CreatedAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"attempt zero", func(r *Record) { r.Attempt.N = 0 }},
		{"attempt without time", func(r *Record) { r.Attempt.At = time.Time{} }},
		{"next attempt without time", func(r *Record) { r.NextAttemptAt = &time.Time{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := happyRecord()
			tt.edit(&r)
			if _, err := prepare(&r); !errors.Is(err, ErrInvalid) {
				t.Errorf("prepare(%s) = %v, want ErrInvalid", tt.name, err)
			}
		})
	}
}

func TestDecodeBatchRefuses(t *testing.T) {
	r := happyRecord()
	k, _ := prepare(&r)
	good := appendRecord([]byte{batchV1}, k, &r)
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"unknown flag", append([]byte{batchV1, good[1] | 0x80}, good[2:]...)},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := decodeBatch(testTenant, tt.data, nil); err == nil {
				t.Errorf("decodeBatch(%s) = %v, nil; want an error", tt.name, got)
			}
		})
	}
}

func TestDeliveryValueRoundTrip(t *testing.T) {
	r := happyRecord()
	next := r.CreatedAt.Add(time.Minute)
	d := Delivery{
		ID: testDlv, TenantID: testTenant, SubscriptionID: testSub,
		EventID: r.EventID, EventType: r.EventType, EventSeq: r.EventSeq,
		Status:        StatusPending,
		Attempts:      []Attempt{*r.Attempt, {N: 2, At: next, StatusCode: 500, Error: "HTTP 500", DurationMs: 7}},
		NextAttemptAt: &next, CreatedAt: r.CreatedAt,
	}
	got := Delivery{ID: d.ID, TenantID: d.TenantID, SubscriptionID: d.SubscriptionID}
	if err := decodeDeliveryValue(appendDeliveryValue(nil, &d), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got); diff != "" {
		t.Errorf("delivery value round trip (-want +got):\n%s", diff)
	}
	// Attempts with and without a trace id (logged before it was kept).
	d.Attempts[1].TraceID = [16]byte{1, 2, 3, 15: 4}
	got = Delivery{ID: d.ID, TenantID: d.TenantID, SubscriptionID: d.SubscriptionID}
	if err := decodeDeliveryValue(appendDeliveryValue(nil, &d), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got); diff != "" {
		t.Errorf("delivery value with trace ids round trip (-want +got):\n%s", diff)
	}
}

// FuzzDecodeBatch: any bytes decode or fail without panicking, and what
// decodes encodes back to records that decode the same (and to the same
// bytes again).
func FuzzDecodeBatch(f *testing.F) {
	for _, seed := range seedBatches() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := decodeBatch(testTenant, data, nil)
		if err != nil {
			return
		}
		enc := []byte{batchV1}
		for i := range recs {
			k, err := prepare(&recs[i])
			if err != nil {
				t.Fatalf("decoded record %d does not prepare: %v\n%+v", i, err, recs[i])
			}
			enc = appendRecord(enc, k, &recs[i])
		}
		again, err := decodeBatch(testTenant, enc, nil)
		if err != nil {
			t.Fatalf("re-encoded batch does not decode: %v", err)
		}
		if diff := cmp.Diff(recs, again); diff != "" {
			t.Fatalf("round trip mismatch (-decoded +re-decoded):\n%s", diff)
		}
		enc2 := []byte{batchV1}
		for i := range again {
			k, _ := prepare(&again[i])
			enc2 = appendRecord(enc2, k, &again[i])
		}
		if string(enc) != string(enc2) {
			t.Fatalf("encoding is not stable:\n%x\n%x", enc, enc2)
		}
	})
}

// seedBatches are encoded batches of the record shapes the writer sends.
func seedBatches() [][]byte {
	next := time.Date(2025, 7, 1, 12, 5, 0, 0, time.UTC)
	edits := []func(*Record){
		func(*Record) {},
		func(r *Record) { r.Status, r.NextAttemptAt, r.Attempt.StatusCode = StatusPending, &next, 503 },
		func(r *Record) { r.Status, r.Attempt = StatusSkipped, nil },
		func(r *Record) { r.Status, r.Attempt, r.Manual = StatusPending, nil, true },
		func(r *Record) { r.Status, r.Attempt.N, r.Attempt.Error = StatusFailed, 8, "timeout" },
		func(r *Record) { r.EventID = "evt_1" },
	}
	var seeds [][]byte
	all := []byte{batchV1}
	for _, edit := range edits {
		r := happyRecord()
		edit(&r)
		k, err := prepare(&r)
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, appendRecord([]byte{batchV1}, k, &r))
		all = appendRecord(all, k, &r)
	}
	return append(seeds, all, []byte{batchV1})
}
