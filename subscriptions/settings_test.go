package subscriptions

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/onestack/webhooks/egress"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/poll"
)

func fieldsOf(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("error %T %v, want *ValidationError", err, err)
	}
	var out []string
	for _, f := range ve.Fields {
		if f.Reason == "" {
			t.Errorf("field %s has no reason", f.Field)
		}
		out = append(out, f.Field)
	}
	return out
}

func TestRulesFiltersHeadersAndDeprecatedTypes(t *testing.T) {
	cat := events.DefaultCatalog()
	for i := range cat {
		if cat[i].Type == "board.updated" {
			cat[i].Deprecated = true
		}
	}
	r := NewRules(cat, egress.Policy{})
	base := func(mod func(*CreateInput)) *CreateInput {
		in := &CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.*"}}
		mod(in)
		return in
	}
	tests := []struct {
		name string
		in   any
		want []string
	}{
		{"filter", base(func(in *CreateInput) {
			in.Filter = ptr(`data.status in ["open", "pending"] && data.priority == "high"`)
		}), nil},
		{"empty filter is none", base(func(in *CreateInput) { in.Filter = ptr("") }), nil},
		{"malformed filter", base(func(in *CreateInput) { in.Filter = ptr(`data.status ==`) }), []string{"filter"}},
		{"unknown variable", base(func(in *CreateInput) { in.Filter = ptr(`status == "open"`) }), []string{"filter"}},
		{"not a condition", base(func(in *CreateInput) { in.Filter = ptr(`1 + 2`) }), []string{"filter"}},
		{"headers", base(func(in *CreateInput) {
			in.Headers = map[string]string{"X-Api-Token": "t0k", "Authorization": "Basic dXNlcjpwYXNz"}
		}), nil},
		{"reserved headers", base(func(in *CreateInput) {
			in.Headers = map[string]string{"webhook-id": "x", "Content-Type": "text/plain", "Host": "h", "User-Agent": "u", "Transfer-Encoding": "chunked", "Connection": "close", "X-Ok": "1"}
		}), []string{"headers[Connection]", "headers[Content-Type]", "headers[Host]", "headers[Transfer-Encoding]", "headers[User-Agent]", "headers[webhook-id]"}},
		{"bad header name and value", base(func(in *CreateInput) {
			in.Headers = map[string]string{"X Bad": "v", "X-Newline": "a\r\nInjected: yes", "X-Long": strings.Repeat("v", MaxHeaderValueLen+1)}
		}), []string{"headers[X Bad]", "headers[X-Long]", "headers[X-Newline]"}},
		{"header twice", base(func(in *CreateInput) { in.Headers = map[string]string{"X-A": "1", "x-a": "2"} }), []string{"headers[x-a]"}},
		{"too many headers", base(func(in *CreateInput) {
			in.Headers = map[string]string{}
			for i := range MaxHeaders + 1 {
				in.Headers[fmt.Sprintf("X-H%d", i)] = "v"
			}
		}), []string{"headers"}},
		{"deprecated type", base(func(in *CreateInput) { in.EventTypes = []string{"ticket.updated", "board.updated"} }), []string{"eventTypes[1]"}},
		{"family of a deprecated type", base(func(in *CreateInput) { in.EventTypes = []string{"board.*"} }), nil},
		{"patch filter", &PatchInput{Filter: ptr(`type ==`)}, []string{"filter"}},
		{"patch removes filter", &PatchInput{Filter: ptr("")}, nil},
		{"patch headers", &PatchInput{Headers: &map[string]string{"Upgrade": "h2c"}}, []string{"headers[Upgrade]"}},
		{"patch deprecated type", &PatchInput{EventTypes: &[]string{"board.updated"}}, []string{"eventTypes[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, fieldsOf(t, r.Check(tt.in))); diff != "" {
				t.Errorf("Check(%s) fields (-want +got):\n%s", tt.name, diff)
			}
		})
	}
	keep := &Subscription{EventTypes: []string{"board.updated"}}
	if err := r.CheckPatch(&PatchInput{EventTypes: &[]string{"board.updated", "ticket.*"}}, keep); err != nil {
		t.Errorf("CheckPatch keeping a deprecated type the subscription has = %v, want nil", err)
	}
	if diff := cmp.Diff([]string{"eventTypes[1]"}, fieldsOf(t, r.CheckPatch(&PatchInput{EventTypes: &[]string{"ticket.*", "board.updated"}}, &Subscription{}))); diff != "" {
		t.Errorf("CheckPatch adding a deprecated type (-want +got):\n%s", diff)
	}
}

// TestFilterAndHeadersStored: the filter is public, the headers are kept
// with the subscription but never in its public JSON, and the index
// compiles the filter, which Filter applies.
func TestFilterAndHeadersStored(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, b, ten := twoReplicas(t)
	high, err := a.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/h", EventTypes: []string{"ticket.*"},
		Filter: ptr(`data.priority == "high"`), Headers: map[string]string{"X-Api-Token": "s3cr3t-value"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := a.CreateSubscription(ctx, ten.ID, CreateInput{URL: "https://example.com/p", EventTypes: []string{"ticket.*"}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := json.Marshal(high)
	if strings.Contains(string(pub), "s3cr3t-value") || !strings.Contains(string(pub), `"filter":"data.priority == \"high\""`) {
		t.Errorf("public JSON = %s, want the filter and no header value", pub)
	}
	poll.Until(t, waitLimit, "both subscriptions on replica b", func() bool {
		s, ok := b.Index().Subscription(ten.ID, high.ID)
		_, ok2 := b.Index().Subscription(ten.ID, plain.ID)
		return ok && ok2 && s.program != nil
	})
	got, _ := b.Index().Subscription(ten.ID, high.ID)
	if diff := cmp.Diff(map[string]string{"X-Api-Token": "s3cr3t-value"}, got.Headers()); diff != "" {
		t.Errorf("headers read back on replica b (-want +got):\n%s", diff)
	}

	body := func(priority string) []byte {
		e := events.Event{ID: "evt_1", Type: "ticket.updated", TenantID: ten.ID, Data: json.RawMessage(`{"priority": "` + priority + `"}`)}
		return e.Marshal()
	}
	ids := func(subs []*Subscription) []string {
		var out []string
		for _, s := range subs {
			out = append(out, s.ID)
		}
		return out
	}
	for _, st := range []*Store{a, b} {
		kept := st.Filter(st.Index().Match(nil, ten.ID, "ticket.updated"), body("high"))
		if len(kept) != 2 {
			t.Errorf("high priority reaches %v, want both subscriptions", ids(kept))
		}
		kept = st.Filter(st.Index().Match(nil, ten.ID, "ticket.updated"), body("low"))
		if diff := cmp.Diff([]string{plain.ID}, ids(kept)); diff != "" {
			t.Errorf("low priority reaches (-want +got):\n%s", diff)
		}
	}
	// An event without the field is an evaluation error: no match, counted.
	before := a.FilterStats()
	kept := a.Filter(a.Index().Match(nil, ten.ID, "ticket.updated"), (&events.Event{ID: "evt_2", Type: "ticket.updated", TenantID: ten.ID, Data: json.RawMessage(`{}`)}).Marshal())
	after := a.FilterStats()
	if len(kept) != 1 || after.Failed != before.Failed+1 || after.Excluded != before.Excluded+1 || after.Evaluated != before.Evaluated+1 {
		t.Errorf("event without the field: kept %d, stats %+v → %+v; want 1 kept and one failed evaluation counted", len(kept), before, after)
	}

	// Patching: the filter goes, the headers go.
	p := PatchInput{Filter: ptr(""), Headers: &map[string]string{}}
	upd, err := a.UpdateSubscription(ctx, ten.ID, high.ID, nil, p.Apply)
	if err != nil {
		t.Fatal(err)
	}
	if upd.Filter != "" || upd.Headers() != nil {
		t.Errorf("after removing both: filter %q, headers %v", upd.Filter, upd.Headers())
	}
	if kept := a.Filter(a.Index().Match(nil, ten.ID, "ticket.updated"), body("low")); len(kept) != 2 {
		t.Errorf("without its filter the subscription gets %d of 2", len(kept))
	}
}

// BenchmarkMatchFilter is what the fan-out does for one event among a
// tenant's 200 subscriptions, 20 of which match its type (as in
// BenchmarkMatch): Match, then Filter. Without filters (type-only) Filter
// does nothing and allocates nothing; with a filter on each of the 20 the
// event's data is decoded once and each filter evaluated; with a filter on
// one of them only (one-filtered), the decode is that one's alone. ns/sub
// is the cost per matching subscription.
func BenchmarkMatchFilter(b *testing.B) {
	e := events.Event{ID: "evt_1", Type: "ticket.updated", TenantID: "t",
		Data: json.RawMessage(`{"ticketId": "T-1042", "status": "pending", "priority": "high", "subject": "Invoice shows the wrong VAT rate", "assignee": "u-17", "tags": ["vip", "billing"]}`)}
	body := e.Marshal()
	const expr = `data.status in ["open", "pending"] && data.priority == "high"`
	for _, tc := range []struct {
		name, filter string
		every        int // every how many matching subscriptions has the filter
	}{
		{"type-only", "", 1},
		{"filtered", expr, 1},
		{"one-filtered", expr, 20},
	} {
		b.Run(tc.name, func(b *testing.B) {
			st := &Store{idx: newIndex()}
			for i := range 200 {
				s := &Subscription{ID: NewSubscriptionID(), TenantID: "t", EventTypes: []string{"board.updated"}, Revision: uint64(i + 1)}
				if i%10 == 0 {
					s.EventTypes = []string{"ticket.*"}
					if i/10%tc.every == 0 {
						s.Filter = tc.filter
					}
				}
				st.idx.putSub(s, false)
			}
			dst := make([]*Subscription, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				dst = st.Filter(st.idx.Match(dst[:0], "t", "ticket.updated"), body)
			}
			if len(dst) != 20 {
				b.Fatalf("Filter = %d, want 20", len(dst))
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/20, "ns/sub")
		})
	}
}
