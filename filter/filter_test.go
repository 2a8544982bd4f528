package filter

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func compiler(t testing.TB) *Compiler {
	t.Helper()
	c, err := NewCompiler()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCompile(t *testing.T) {
	c := compiler(t)
	tests := []struct {
		expr      string
		line, col int // 0: compiles
	}{
		{`data.status in ["open", "pending"] && data.priority == "high"`, 0, 0},
		{`type == "ticket.updated"`, 0, 0},
		{`type.startsWith("ticket.") || has(data.boardId)`, 0, 0},
		{`occurredAt > timestamp("2026-01-01T00:00:00Z")`, 0, 0},
		{`data.flag`, 0, 0},
		{`size(data.tags) > 2 && data.tags.exists(t, t == "vip")`, 0, 0},
		{`data.status ==`, 1, 15},
		{`data.status = "open"`, 1, 13},
		{"data.a == 1 &&\n  data.b ==", 2, 12},
		{`status == "open"`, 1, 1},
		{`data.priority == 1 +`, 1, 21},
		{`1 + 2`, 1, 1},
		{`"text"`, 1, 1},
		{`type == 1`, 1, 6},
		{``, 1, 1},
		{`   `, 1, 1},
		{strings.Repeat("(", 40) + "true" + strings.Repeat(")", 40), 1, 1},
		{`data.x == "` + strings.Repeat("x", MaxLen) + `"`, 1, 1},
		{"data.x == \"\xff\"", 1, 1},
	}
	for _, tt := range tests {
		_, err := c.Compile(tt.expr)
		if tt.line == 0 {
			if err != nil {
				t.Errorf("Compile(%q) = %v, want it to compile", tt.expr, err)
			}
			continue
		}
		var fe *Error
		if !errors.As(err, &fe) {
			t.Errorf("Compile(%.40q) = %v, want an *Error", tt.expr, err)
			continue
		}
		if fe.Line != tt.line || (tt.col != 0 && fe.Column != tt.col) || fe.Message == "" {
			t.Errorf("Compile(%.40q) = %v at %d:%d, want an error at %d:%d", tt.expr, fe, fe.Line, fe.Column, tt.line, tt.col)
		}
	}
}

func input(t testing.TB, typ, data string) *Input {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(data), &m); err != nil {
		t.Fatal(err)
	}
	return NewInput(typ, time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), m)
}

func TestMatch(t *testing.T) {
	c := compiler(t)
	const ticket = `{"ticketId": "T-1", "status": "open", "priority": "high", "n": 3, "tags": ["vip"], "nested": {"a": {"b": true}}}`
	tests := []struct {
		expr, typ, data string
		want            bool
		evalErr         bool
	}{
		{`data.status in ["open", "pending"] && data.priority == "high"`, "ticket.updated", ticket, true, false},
		{`data.status in ["open", "pending"] && data.priority == "high"`, "ticket.updated", `{"status": "open", "priority": "low"}`, false, false},
		{`type == "ticket.created"`, "ticket.updated", ticket, false, false},
		{`data.n > 2 && data.n < 4`, "ticket.updated", ticket, true, false},
		{`data.n == 3`, "ticket.updated", ticket, true, false},
		{`"vip" in data.tags`, "ticket.updated", ticket, true, false},
		{`data.nested.a.b`, "ticket.updated", ticket, true, false},
		{`has(data.assignee) && data.assignee == "u-1"`, "ticket.updated", ticket, false, false},
		{`occurredAt > timestamp("2026-01-01T00:00:00Z")`, "ticket.updated", ticket, true, false},
		// A missing field compared is an error: no match.
		{`data.assignee == "u-1"`, "ticket.updated", ticket, false, true},
		// A non-boolean result at run time.
		{`data.status`, "ticket.updated", ticket, false, true},
		// Past the cost limit.
		{`data.big.all(i, data.big.all(j, i + j >= 0))`, "ticket.updated", `{"big": [` + strings.TrimSuffix(strings.Repeat("1,", 500), ",") + `]}`, false, true},
	}
	for _, tt := range tests {
		p, err := c.Compile(tt.expr)
		if err != nil {
			t.Fatalf("Compile(%q) = %v", tt.expr, err)
		}
		got, err := p.Match(input(t, tt.typ, tt.data))
		if got != tt.want || (err != nil) != tt.evalErr {
			t.Errorf("Match(%q, %.40s) = %v, %v; want %v (evaluation error: %v)", tt.expr, tt.data, got, err, tt.want, tt.evalErr)
		}
		if err != nil && !errors.Is(err, ErrEval) {
			t.Errorf("Match(%q) error %v does not wrap ErrEval", tt.expr, err)
		}
	}
}

// FuzzCompile: compiling never panics, a refusal has a position inside
// the expression, and an accepted filter evaluates without panicking.
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		`data.status in ["open", "pending"] && data.priority == "high"`,
		`type.matches("^ticket\\.")`, `data.a.b.c[0] == 1`, `data.status ==`, `)(`,
		`data.x.map(y, y * 2).size() > 1`, `[1,2,3].all(x, x > 0)`, `timestamp("bad")`,
		`duration("1h") > duration("1m")`, `data["a-b"] == "c"`, `int(data.n) / 0 == 1`,
	} {
		f.Add(s)
	}
	c := compiler(f)
	in := input(f, "ticket.updated", `{"status": "open", "priority": "high", "n": 0, "x": [1, 2], "a": {"b": {"c": [1]}}}`)
	f.Fuzz(func(t *testing.T, expr string) {
		p, err := c.Compile(expr)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) || fe.Line < 1 || fe.Column < 1 || fe.Line > strings.Count(expr, "\n")+1 {
				t.Fatalf("Compile(%q) = %v, want an *Error at a position inside the expression", expr, err)
			}
			return
		}
		if p.Source() != expr {
			t.Fatalf("Source() = %q, want %q", p.Source(), expr)
		}
		p.Match(in)
	})
}

// BenchmarkMatch is one filter's evaluation against an event whose data
// was converted once (NewInput), as the fan-out does for each subscription
// that has a filter.
func BenchmarkMatch(b *testing.B) {
	c := compiler(b)
	p, err := c.Compile(`data.status in ["open", "pending"] && data.priority == "high"`)
	if err != nil {
		b.Fatal(err)
	}
	in := input(b, "ticket.updated", `{"ticketId": "T-1042", "status": "pending", "priority": "high", "subject": "Invoice shows the wrong VAT rate", "assignee": "u-17", "tags": ["vip", "billing"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if ok, err := p.Match(in); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
