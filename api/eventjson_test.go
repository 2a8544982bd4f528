package api

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
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
	{`{"type":"ticket.updated","data":{},"data":{"a":1}}`, false},      // repeated key: the last wins
	{`{"Type":"ticket.updated","data":{}}`, false},                     // keys match in any case
	{`{"type":"ticket\u002eupdated","data":{}}`, false},                // an escape
	{`{"type":"tické","data":{}}`, false},                              // beyond ASCII
	{`{"type":"ticket.updated","id":null,"data":{}}`, false},           // null
	{`{"type":"ticket.updated","data":null}`, false},                   // null data
	{`{"type":"ticket.updated","data":[1]}`, false},                    // data not an object
	{`{"type":"ticket.updated","data":"x"}`, false},                    // data not an object
	{`{"type":"ticket.updated","data":{"a":}}`, false},                 // malformed data
	{`{"type":"ticket.updated","data":{"a":1]}`, false},                // brackets crossed
	{`{"type":"ticket.updated","data":{"a":"` + "\x01" + `"}}`, false}, // a control character
	{`{"type":"ticket.updated","data":{}} {}`, false},                  // data after the value
	{`{"type":"ticket.updated","data":{},}`, false},                    // a trailing comma
	{`{"type":"ticket.updated","other":1}`, false},                     // an unknown field
	{`{"type":1,"data":{}}`, false},                                    // a wrong type
	{`{"type":"ticket.updated","data":{}`, false},                      // truncated
	{`[]`, false},
	{`{"type":"a"`, false},
}

func TestEventBody(t *testing.T) {
	for _, tc := range eventBodies {
		got, ok := eventBody([]byte(tc.body))
		if ok != tc.fast {
			t.Errorf("eventBody(%q) ok = %v, want %v", tc.body, ok, tc.fast)
			continue
		}
		if !ok {
			continue
		}
		var want eventInput
		if err := decodeBytes([]byte(tc.body), &want); err != nil {
			t.Errorf("decodeBytes(%q) = %v after the fast path read it", tc.body, err)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("eventBody(%q) differs from decodeBytes (-want +got):\n%s", tc.body, diff)
		}
	}
}

// batchOf is the decodeBytes target of a batch body.
type batchOf struct {
	Events []eventInput `json:"events"`
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
		var want batchOf
		if err := decodeBytes([]byte(tc.body), &want); err != nil {
			t.Errorf("decodeBytes(%q) = %v after the fast path read it", tc.body, err)
			continue
		}
		if diff := cmp.Diff(want.Events, got); diff != "" {
			t.Errorf("batchBody(%q) differs from decodeBytes (-want +got):\n%s", tc.body, diff)
		}
	}
}

// FuzzEventFastPath: whatever the fast path reads, decodeBytes reads too,
// to the same value; what it does not read is left whole to decodeBytes.
func FuzzEventFastPath(f *testing.F) {
	for _, tc := range eventBodies {
		f.Add([]byte(tc.body))
		f.Add([]byte(`{"events":[` + tc.body + `]}`))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if got, ok := eventBody(body); ok {
			var want eventInput
			if err := decodeBytes(body, &want); err != nil {
				t.Fatalf("eventBody(%q) read it; decodeBytes: %v", body, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("eventBody(%q) differs from decodeBytes (-want +got):\n%s", body, diff)
			}
		} else if !cmp.Equal(got, eventInput{}) {
			t.Fatalf("eventBody(%q) = %+v with false, want nothing", body, got)
		}
		if got, ok := batchBody(body); ok {
			var want batchOf
			if err := decodeBytes(body, &want); err != nil {
				t.Fatalf("batchBody(%q) read it; decodeBytes: %v", body, err)
			}
			if diff := cmp.Diff(want.Events, got); diff != "" {
				t.Fatalf("batchBody(%q) differs from decodeBytes (-want +got):\n%s", body, diff)
			}
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
