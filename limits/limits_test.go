package limits

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEffective(t *testing.T) {
	flags := Defaults()
	flags.Subscriptions = 50 // an operator's default
	for _, tc := range []struct {
		name      string
		overrides Limits
		want      Limits
	}{
		{"no overrides", Limits{}, flags},
		{"one override", Limits{Subscriptions: 500}, func() Limits { l := flags; l.Subscriptions = 500; return l }()},
		{"every override", Limits{1, 2, 3, 4, 5, 6, 7}, Limits{1, 2, 3, 4, 5, 6, 7}},
		{"a negative is unset", Limits{Jobs: -1}, flags},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.overrides.Over(flags)); diff != "" {
				t.Errorf("Over (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultsAreValid(t *testing.T) {
	if p := Defaults().Validate(); len(p) > 0 {
		t.Errorf("Defaults().Validate() = %v, want none", p)
	}
	if p := (Limits{}).Validate(); len(p) > 0 {
		t.Errorf("Limits{}.Validate() = %v, want none (zero means the default)", p)
	}
	got := Limits{Subscriptions: 100_001, Jobs: -2, EventBytes: MaxEventBytes + 1}.Validate()
	want := []Problem{
		{Subscriptions, "must be a whole number from 1 to 100,000"},
		{EventBytes, "must be a whole number from 1 to 262,144"},
		{Jobs, "must be a whole number from 1 to 1,000"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Validate (-want +got):\n%s", diff)
	}
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name             string
		max, used, after int64
		want             error
	}{
		{"under", 100, 10, 11, nil},
		{"up to the limit", 100, 99, 100, nil},
		{"past the limit", 100, 100, 101, &ExceededError{Limit: Subscriptions, Max: 100, Used: 100, After: 101}},
		{"past it by many", 3, 1, 5, &ExceededError{Limit: Subscriptions, Max: 3, Used: 1, After: 5}},
		{"over a lowered limit, level", 2, 5, 5, nil},
		{"over a lowered limit, down", 2, 5, 4, nil},
		{"over a lowered limit, up", 2, 5, 6, &ExceededError{Limit: Subscriptions, Max: 2, Used: 5, After: 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Check(Subscriptions, tc.max, tc.used, tc.after)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Check(%d, %d, %d) (-want +got):\n%s", tc.max, tc.used, tc.after, diff)
			}
		})
	}
	if err := CheckEventBytes(100, 100); err != nil {
		t.Errorf("CheckEventBytes(100, 100) = %v, want nil", err)
	}
	var e *ExceededError
	if err := CheckEventBytes(100, 101); !errors.As(err, &e) || *e != (ExceededError{Limit: EventBytes, Max: 100, Used: 101, After: 101}) {
		t.Errorf("CheckEventBytes(100, 101) = %#v", err)
	}
}

func TestPatch(t *testing.T) {
	stored := Limits{Subscriptions: 500, Jobs: 3}
	for _, tc := range []struct {
		name     string
		body     string
		problems []Problem
		want     Limits // stored, patched
	}{
		{"empty", `{}`, nil, stored},
		{"one set", `{"eventTypes": 20}`, nil, Limits{Subscriptions: 500, EventTypes: 20, Jobs: 3}},
		{"one changed", `{"subscriptions": 600}`, nil, Limits{Subscriptions: 600, Jobs: 3}},
		{"null resets", `{"subscriptions": null}`, nil, Limits{Jobs: 3}},
		{"a whole number written as a float", `{"jobs": 1e1}`, nil, Limits{Subscriptions: 500, Jobs: 10}},
		{"at the bounds", `{"requestsPerMinute": 1, "storedBytes": 1125899906842624}`, nil, Limits{RequestsPerMinute: 1, Subscriptions: 500, StoredBytes: 1 << 50, Jobs: 3}},
		{"zero", `{"subscriptions": 0}`, []Problem{{Subscriptions, "must be a whole number from 1 to 100,000"}}, Limits{}},
		{"negative", `{"jobs": -1}`, []Problem{{Jobs, "must be a whole number from 1 to 1,000"}}, Limits{}},
		{"fraction", `{"eventTypes": 1.5}`, []Problem{{EventTypes, "must be a whole number from 1 to 10,000"}}, Limits{}},
		{"huge", `{"storedBytes": 1e300}`, []Problem{{StoredBytes, "must be a whole number from 1 to 1,125,899,906,842,624"}}, Limits{}},
		{"several, in order", `{"jobs": 0, "requestsPerMinute": 1000001}`, []Problem{
			{RequestsPerMinute, "must be a whole number from 1 to 1,000,000"}, {Jobs, "must be a whole number from 1 to 1,000"}}, Limits{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Patch
			if err := json.Unmarshal([]byte(tc.body), &p); err != nil {
				t.Fatalf("decode %s: %v", tc.body, err)
			}
			if diff := cmp.Diff(tc.problems, p.Problems()); diff != "" {
				t.Fatalf("Problems (-want +got):\n%s", diff)
			}
			if tc.problems != nil {
				return
			}
			if diff := cmp.Diff(tc.want, p.Apply(stored)); diff != "" {
				t.Errorf("Apply (-want +got):\n%s", diff)
			}
			enc, _ := json.Marshal(p)
			var again Patch
			if err := json.Unmarshal(enc, &again); err != nil || cmp.Diff(p.Apply(stored), again.Apply(stored)) != "" {
				t.Errorf("round trip of %s through %s changed it (%v)", tc.body, enc, err)
			}
		})
	}
}

func TestPatchRefusesOtherTypes(t *testing.T) {
	for _, body := range []string{`{"jobs": "3"}`, `{"jobs": true}`, `{"jobs": [3]}`, `{"jobs": {}}`} {
		var p Patch
		var te *json.UnmarshalTypeError
		if err := json.Unmarshal([]byte(body), &p); !errors.As(err, &te) || te.Field != "jobs" {
			t.Errorf("Unmarshal(%s) = %v, want an UnmarshalTypeError on jobs", body, err)
		}
	}
}

func TestErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{Check(Subscriptions, 2, 2, 3), "this would bring the tenant's subscriptions to 3, over its limit of 2 (it has 2)"},
		{CheckEventBytes(10, 12), "the event's data is 12 bytes, over the tenant's eventBytes limit of 10"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}
