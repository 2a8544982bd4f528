package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/limits"
)

// eventBodies are bodies of POST /api/events, and whether the fast path
// reads them (else decodeBytes does, or refuses them).
var eventBodies = []struct {
	body string
	fast bool
}{
	{`{"type":"ticket.updated","id":"evt_1","data":{"ticketId":"T-1"}}`, true},
	{" \t\r\n{ \"data\" : {\"a\":[1,2,{\"b\":null}]} , \"type\" : \"ticket.updated\" }\n", true},
	{`{"type":"ticket.updated","data":{}}`, true},
	{`{}`, true},
	{`{"id":"","type":"","data":{}}`, true},
	{`{"type":"ticket.updated","data":{"s":"}]\"{[\\","t":"\u00e9"}}`, true},
	{`{"data":{"a":{"b":{"c":[[],[{}]]}}}}`, true},
	{`{"type":"ticket.updated","data":{},"data":{"a":1}}`, false},     // repeated key: the last wins
	{`{"Type":"ticket.updated","data":{}}`, false},                    // keys match in any case
	{`{"type":"ticket\u002eupdated","data":{}}`, false},               // an escape
	{`{"type":"tické","data":{}}`, false},                             // beyond ASCII
	{`{"type":"ticket.updated","id":null,"data":{}}`, false},          // null
	{`{"type":"ticket.updated","data":null}`, false},                  // null data
	{`{"type":"ticket.updated","data":[1]}`, false},                   // data not an object
	{`{"type":"ticket.updated","data":"x"}`, false},                   // data not an object
	{`{"type":"ticket.updated","data":{"a":}}`, true},                 // malformed data: left to json.Valid
	{`{"type":"ticket.updated","data":{"a":1]}`, true},                // brackets crossed: the same
	{`{"type":"ticket.updated","data":{"a":"` + "\x01" + `"}}`, true}, // a control character: the same
	{`{"type":"ticket.updated","data":{}} {}`, false},                 // data after the value
	{`{"type":"ticket.updated","data":{},}`, false},                   // a trailing comma
	{`{"type":"ticket.updated","other":1}`, false},                    // an unknown field
	{`{"type":1,"data":{}}`, false},                                   // a wrong type
	{`{"type":"ticket.updated","data":{}`, false},                     // truncated
	{`[]`, false},
	{`{"type":"a"`, false},
	{"\xef\xbb\xbf" + `{"type":"ticket.updated","data":{}}`, false}, // a byte order mark
	{`{"type":"ticket.updated","data":{}}` + "\x00", false},         // a NUL after the value
	{`null`, false},             // not an object
	{`"ticket.updated"`, false}, // not an object
	{`{"\u0074ype":"ticket.updated","data":{}}`, false},                                  // an escape in a key
	{`{"type":"ticket.updated","TYPE":"board.updated","data":{}}`, false},                // a key repeated in another case
	{`{"type":"tick` + "\xff" + `","data":{}}`, false},                                   // not UTF-8 in the type
	{`{"typ` + "\xff" + `":"ticket.updated","data":{}}`, false},                          // not UTF-8 in a key
	{`{"type":"ticket.updated","data":{"a":"` + "\xff\xfe" + `"}}`, true},                // not UTF-8 in the data: as it is
	{`{"type":"ticket.updated","data":{"a":"\\"}}`, true},                                // an escaped backslash ends a string
	{`{"type":"ticket.updated","data":{"a":"\"}","b":"]"}}`, true},                       // an escaped quote, brackets in strings
	{`{"type":"ticket.updated","data":{"a":"\\"},"id":"x"}`, true},                       // the same, before another field
	{`{"type":"ticket.updated","data":{"a":"x\"}}`, false},                               // a string that does not end
	{`{"type":"ticket.updated","data":{"n":-0.5e+10,"m":1E400,"z":0,"t":true}}`, true},   // numbers and literals
	{`{"type":"ticket.updated","data":{"n":01}}`, true},                                  // a number JSON refuses: left to json.Valid
	{`{"type":"ticket.updated","data":{"a":` + deep + `}}`, true},                        // deeper than encoding/json goes: the same
	{`{"type":"webhook.test","data":{}}`, true},                                          // an internal type
	{`{"type":"ticket.nope","data":{}}`, true},                                           // an unknown type
	{`{"type":"ticket.updated","id":"batch","data":{}}`, true},                           // the reserved id
	{`{"type":"ticket.updated","id":"a b","data":{}}`, true},                             // an id of the wrong form
	{`{"type":"ticket.updated","id":"` + strings.Repeat("x", 65) + `","data":{}}`, true}, // an id too long
	{`{"type":"ticket.updated","data":{"a":1}` + "\t\r\n }\n", true},                     // every kind of whitespace
}

// deep is an array nested deeper than encoding/json's limit of 10,000.
var deep = strings.Repeat("[", 10001) + strings.Repeat("]", 10001)

func TestEventBody(t *testing.T) {
	for _, tc := range eventBodies {
		got, ok := eventBody([]byte(tc.body))
		if ok != tc.fast {
			t.Errorf("eventBody(%q) ok = %v, want %v", tc.body, ok, tc.fast)
			continue
		}
		if ok {
			agrees(t, []byte(tc.body), false, []eventInput{got})
		}
	}
}

// agrees checks what the fast path read of body against decodeBytes: the
// same events when every event's data is valid JSON, and a refusal of the
// body when one is not.
func agrees(t *testing.T, body []byte, batch bool, got []eventInput) {
	t.Helper()
	valid := true
	for _, in := range got {
		if in.Data != nil && !json.Valid(in.Data) {
			valid = false
		}
	}
	want, err := decodeEvents(body, batch)
	switch {
	case err != nil && valid:
		t.Errorf("decodeEvents(%q) = %v after the fast path read it, data valid", body, err)
	case err == nil && !valid:
		t.Errorf("decodeEvents(%q) read it, though the fast path read data that is not valid JSON", body)
	case err == nil:
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("the fast path's read of %q differs from decodeBytes (-want +got):\n%s", body, diff)
		}
	}
}

func TestBatchBody(t *testing.T) {
	bodies := []struct {
		body string
		fast bool
	}{
		{`{"events":[{"type":"ticket.updated","id":"evt_1","data":{"ticketId":"T-1"}}]}`, true},
		{`{ "events" : [ {"type":"a","data":{}} , {"id":"x","data":{"b":[]}} , {} ] }`, true},
		{`{"events":[]}`, true},
		{`{"events":null}`, false},
		{`{"events":[{"type":"a","data":{}}],"events":[]}`, false},
		{`{"events":[{"type":"a","data":{}},]}`, false},
		{`{"events":[{"type":"a","data":{}}]`, false},
		{`{"events":[{"type":"a","data":{}}]} x`, false},
		{`{"events":[{"type":"a","data":{}}],"more":1}`, false},
		{`{"Events":[]}`, false},
		{`{}`, false},
		{`{"events":[{"type":"a","data":{"b":1 2}},{"type":"a","data":{}}]}`, true},
	}
	for _, tc := range bodies {
		got, ok := batchBody([]byte(tc.body))
		if ok != tc.fast {
			t.Errorf("batchBody(%q) ok = %v, want %v", tc.body, ok, tc.fast)
			continue
		}
		if !ok {
			if got != nil {
				t.Errorf("batchBody(%q) = %v with false, want nothing", tc.body, got)
			}
			continue
		}
		agrees(t, []byte(tc.body), true, got)
	}
}

// FuzzEventFastPath: whatever the fast path reads, decodeBytes reads to
// the same value, or refuses when an event's data is not valid JSON; what
// it does not read is left whole to decodeBytes.
func FuzzEventFastPath(f *testing.F) {
	for _, tc := range eventBodies {
		f.Add([]byte(tc.body))
		f.Add([]byte(`{"events":[` + tc.body + `]}`))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, ok := eventBody(body); ok {
			agrees(t, body, false, []eventInput{got})
		} else if !cmp.Equal(got, eventInput{}) {
			t.Fatalf("eventBody(%q) = %+v with false, want nothing", body, got)
		}
		if got, ok := batchBody(body); ok {
			agrees(t, body, true, got)
		} else if got != nil {
			t.Fatalf("batchBody(%q) = %+v with false, want nothing", body, got)
		}
	})
}

func TestAnswers(t *testing.T) {
	for _, ids := range [][]string{
		{"evt_01JDQ4"},
		{"a-b_c", "Z9"},
		{""},
		{`"q"`, `back\slash`, "<tag>&", "é", "\x00\x1f", "\u2028", "\xff"},
	} {
		want, _ := json.Marshal(map[string][]string{"ids": ids})
		if got := string(idsAnswer(ids)); got != string(want)+"\n" {
			t.Errorf("idsAnswer(%q) = %q, want %q", ids, got, want)
		}
		for _, id := range ids {
			want, _ := json.Marshal(map[string]string{"id": id})
			if got := string(idAnswer(id)); got != string(want)+"\n" {
				t.Errorf("idAnswer(%q) = %q, want %q", id, got, want)
			}
		}
	}
}

// FuzzReadEvents: the publish routes answer a body read by the fast path
// as they answer it decoded by encoding/json: the same events, or the
// same refusal (a body that is not JSON is refused as such before any
// check, an event's data over eventBytes before its problems), with the
// tenant's whole eventBytes and with a small one.
func FuzzReadEvents(f *testing.F) {
	for _, tc := range eventBodies {
		f.Add([]byte(tc.body), false)
		f.Add([]byte(`{"events":[`+tc.body+`]}`), true)
		f.Add([]byte(`{"events":[`+tc.body+`,`+tc.body+`]}`), true)
	}
	f.Add([]byte(`{"events":[]}`), true)
	f.Add([]byte(`{"type":"ticket.updated","data":{"a":"a long enough value"} ,}`), false)
	a := &API{cfg: Config{Catalog: events.DefaultCatalog()}}
	whole := &caller{tenant: "ten_1", limits: limits.Defaults()}
	small := &caller{tenant: "ten_1", limits: limits.Defaults()}
	small.limits.EventBytes = 16
	f.Fuzz(func(t *testing.T, body []byte, batch bool) {
		for _, c := range []*caller{whole, small} {
			sameAnswer(t, a, c, body, batch)
		}
	})
}

// sameAnswer fails t unless readEvents answers body as it does without
// the fast path: the same events, or the same status and error body.
func sameAnswer(t *testing.T, a *API, c *caller, body []byte, batch bool) {
	t.Helper()
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	fastIns, fastEvts, fastErr := a.readEventsWith(body, batch, true, c, now)
	ins, evts, err := a.readEventsWith(body, batch, false, c, now)
	if (err == nil) != (fastErr == nil) {
		t.Fatalf("readEvents(%.200q, batch %v): %v with the fast path, %v without", body, batch, fastErr, err)
	}
	if err != nil {
		want, _ := json.Marshal(answer(err))
		got, _ := json.Marshal(answer(fastErr))
		if string(got) != string(want) || answer(err).Status != answer(fastErr).Status {
			t.Fatalf("readEvents(%.200q, batch %v) answers %d %s with the fast path, %d %s without",
				body, batch, answer(fastErr).Status, got, answer(err).Status, want)
		}
		return
	}
	// Ids the server made differ from run to run.
	for i := range evts {
		if ins[i].ID == nil {
			evts[i].ID, fastEvts[i].ID = "", ""
		}
	}
	if diff := cmp.Diff(ins, fastIns); diff != "" {
		t.Fatalf("readEvents(%.200q) inputs (-without +with the fast path):\n%s", body, diff)
	}
	if diff := cmp.Diff(evts, fastEvts); diff != "" {
		t.Fatalf("readEvents(%.200q) events (-without +with the fast path):\n%s", body, diff)
	}
}

// TestReadEventsLargeBodies: bodies too large to seed the fuzzer with are
// answered with the fast path as without it: data over its 256 KiB, over
// eventBytes, a batch over 100 events, a batch whose last event's data is
// not JSON, and the largest body the API reads.
func TestReadEventsLargeBodies(t *testing.T) {
	a := &API{cfg: Config{Catalog: events.DefaultCatalog()}}
	c := &caller{tenant: "ten_1", limits: limits.Defaults()}
	one := `{"type":"ticket.updated","data":{"a":1}}`
	items := func(n int, last string) string {
		return `{"events":[` + strings.Repeat(one+",", n-1) + last + `]}`
	}
	big := `{"type":"ticket.updated","data":{"a":"` + strings.Repeat("x", events.MaxDataBytes) + `"}}`
	for _, tc := range []struct {
		name  string
		body  string
		batch bool
	}{
		{"data over 256 KiB", big, false},
		{"a batch item's data over 256 KiB", items(2, big), true},
		{"100 events", items(100, one), true},
		{"101 events", items(101, one), true},
		{"101 events, the last one's data not JSON", items(101, `{"type":"ticket.updated","data":{"a":}}`), true},
		{"100 events, the last one's data not JSON", items(100, `{"type":"ticket.updated","data":{"a":}}`), true},
		{"100 events, the last one too deep", items(100, `{"type":"ticket.updated","data":{"a":`+deep+`}}`), true},
		{"MaxBody", `{"type":"ticket.updated","data":{"a":"` + strings.Repeat("y", DefaultMaxBody-64) + `"}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			small := *c
			small.limits.EventBytes = 1 << 10
			for _, c := range []*caller{c, &small} {
				sameAnswer(t, a, c, []byte(tc.body), tc.batch)
			}
		})
	}
}

// BenchmarkReadEvents reads and checks a batch of one event, and one
// event alone, with the fast path and with encoding/json alone: the API's
// own work on a publish body, without NATS.
func BenchmarkReadEvents(b *testing.B) {
	a := &API{cfg: Config{Catalog: events.DefaultCatalog()}}
	c := &caller{tenant: "ten_1", limits: limits.Defaults()}
	now := time.Date(2026, 12, 3, 15, 0, 0, 0, time.UTC)
	one := `{"type":"ticket.updated","id":"evt_01JDQ4","data":` + benchData + `}`
	for _, bc := range []struct {
		name  string
		body  string
		batch bool
	}{{"batch", `{"events":[` + one + `]}`, true}, {"one", one, false}} {
		for _, fast := range []bool{false, true} {
			name := bc.name + "/decoder"
			if fast {
				name = bc.name + "/fast"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, _, err := a.readEventsWith([]byte(bc.body), bc.batch, fast, c, now); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
