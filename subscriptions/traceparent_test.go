package subscriptions

import (
	"encoding/json"
	"testing"
)

// TestSendTraceparentPatch: a PATCH's sendTraceparent turns the header on
// or off and leaves it as it is when absent; a record stored before the
// field existed sends it.
func TestSendTraceparentPatch(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name  string
		start bool // NoTraceparent before
		patch *bool
		want  bool // SendsTraceparent after
	}{
		{"absent leaves it on", false, nil, true},
		{"absent leaves it off", true, nil, false},
		{"false turns it off", false, &no, false},
		{"true turns it on", true, &yes, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub := Subscription{NoTraceparent: tt.start}
			if err := (PatchInput{SendTraceparent: tt.patch}).Apply(&sub); err != nil {
				t.Fatal(err)
			}
			if got := sub.SendsTraceparent(); got != tt.want {
				t.Errorf("SendsTraceparent() = %v, want %v", got, tt.want)
			}
		})
	}
	var old Subscription
	if err := json.Unmarshal([]byte(`{"id":"sub_1","url":"https://example.com","eventTypes":["*"],"active":true}`), &old); err != nil {
		t.Fatal(err)
	}
	if !old.SendsTraceparent() {
		t.Errorf("a record without noTraceparent: SendsTraceparent() = false, want true")
	}
}
