package tracing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestNewIsOffUnlessAskedFor(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		on      bool
		wantErr bool
	}{
		{name: "nothing set", env: nil},
		{name: "endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true},
		{name: "traces endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, on: true},
		{name: "exporter otlp alone", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{name: "exporter none", env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}},
		{name: "sdk disabled", env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}},
		{name: "another exporter", env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, wantErr: true},
		{name: "otlp among others", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, wantErr: true},
		{name: "a list of otlp", env: map[string]string{"OTEL_TRACES_EXPORTER": " otlp , none"}, on: true},
		{name: "grpc", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, wantErr: true},
		{name: "bad sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "sometimes"}, wantErr: true},
		{name: "bad ratio", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}, wantErr: true},
		{name: "bad endpoint", env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "127.0.0.1:4318"}, wantErr: true},
		{name: "bad delay", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_BSP_SCHEDULE_DELAY": "soon"}, wantErr: true},
		{name: "ratio sampler", env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}, on: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, err := New(context.Background(), Config{Getenv: envOf(tt.env)})
			if tt.wantErr {
				if !errors.Is(err, ErrConfig) {
					t.Fatalf("New = %v, want an error wrapping ErrConfig", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if tr.Enabled() != tt.on {
				t.Errorf("Enabled() = %v, want %v", tr.Enabled(), tt.on)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
	if tr, err := New(context.Background(), Config{}); tr != nil || err != nil {
		t.Errorf("New(no Getenv) = %v, %v; want nil, nil", tr, err)
	}
}

func TestSamplerFromEnvironment(t *testing.T) {
	tests := []struct {
		sampler, arg, want string
	}{
		{"", "", "ParentBased{root:AlwaysOnSampler"},
		{"always_off", "", "AlwaysOffSampler"},
		{"traceidratio", "0.25", "TraceIDRatioBased{0.25}"},
		{"parentbased_traceidratio", "0.01", "ParentBased{root:TraceIDRatioBased{0.01}"},
		{"parentbased_always_off", "", "ParentBased{root:AlwaysOffSampler"},
	}
	for _, tt := range tests {
		s, _, err := samplerFrom(envOf(map[string]string{"OTEL_TRACES_SAMPLER": tt.sampler, "OTEL_TRACES_SAMPLER_ARG": tt.arg}))
		if err != nil {
			t.Fatalf("samplerFrom(%q, %q): %v", tt.sampler, tt.arg, err)
		}
		if got := s.Description(); len(got) < len(tt.want) || got[:len(tt.want)] != tt.want {
			t.Errorf("samplerFrom(%q, %q) = %s, want %s...", tt.sampler, tt.arg, got, tt.want)
		}
	}
}

var wellFormed = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func TestParseAndFormat(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", false}, // version 00 is exactly 55
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false},
		{"", false},
	}
	for _, tt := range tests {
		sc, ok := Parse(tt.in)
		if ok != tt.ok {
			t.Errorf("Parse(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			continue
		}
		if ok && tt.in[:2] == "00" && Format(sc) != tt.in {
			t.Errorf("Format(Parse(%q)) = %q", tt.in, Format(sc))
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
	f.Fuzz(func(t *testing.T, s string) {
		sc, ok := Parse(s)
		if !ok {
			return
		}
		out := Format(sc)
		if !wellFormed.MatchString(out) {
			t.Fatalf("Format(Parse(%q)) = %q, not a traceparent", s, out)
		}
		back, ok := Parse(out)
		if !ok || back.TraceID() != sc.TraceID() || back.SpanID() != sc.SpanID() || back.TraceFlags() != sc.TraceFlags() {
			t.Fatalf("Parse(Format(%q)) = %v, %v; want %v", s, back, ok, sc)
		}
	})
}

func TestFreshChildAndFromKey(t *testing.T) {
	a, b := Fresh(), Fresh()
	if !a.IsValid() || a.TraceID() == b.TraceID() || a.IsSampled() {
		t.Fatalf("Fresh() = %v, %v: want two valid unsampled contexts of distinct traces", a, b)
	}
	c := Child(a)
	if c.TraceID() != a.TraceID() || c.SpanID() == a.SpanID() || !wellFormed.MatchString(Format(c)) {
		t.Errorf("Child(%v) = %v: want its trace, a new span id", a, c)
	}
	sampled := a.WithTraceFlags(trace.FlagsSampled)
	if !Child(sampled).IsSampled() {
		t.Errorf("Child of a sampled context is not sampled")
	}
	if !Child(trace.SpanContext{}).IsValid() {
		t.Errorf("Child of nothing is not a valid fresh context")
	}
	k1, k2 := FromKey("ten_1:evt_1"), FromKey("ten_1:evt_1")
	if k1.TraceID() != k2.TraceID() || !k1.IsValid() || FromKey("ten_2:evt_1").TraceID() == k1.TraceID() {
		t.Errorf("FromKey: want a stable valid trace id per key")
	}
}

func TestStampAndStored(t *testing.T) {
	var off *Tracer
	h := map[string][]string{}
	off.Stamp(context.Background(), h)
	sc := off.Stored(h, "ten_1", "evt_1")
	if !wellFormed.MatchString(h[Header][0]) || sc.TraceID() == FromKey("ten_1:evt_1").TraceID() {
		t.Fatalf("Stamp with no context wrote %q; want a fresh traceparent read back by Stored", h[Header])
	}
	parent, _ := Parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	h = map[string][]string{}
	off.Stamp(trace.ContextWithRemoteSpanContext(context.Background(), parent), h)
	if got := h[Header][0]; got != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" {
		t.Errorf("Stamp with a producer's context wrote %q, want it as is", got)
	}
	if got := off.Stored(map[string][]string{Header: {"junk"}}, "ten_1", "evt_1"); got.TraceID() != FromKey("ten_1:evt_1").TraceID() {
		t.Errorf("Stored(junk) = %v, want FromKey's", got)
	}
}

func TestServerSpan(t *testing.T) {
	const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if want := http.CanonicalHeaderKey(Header); httpHeader != want {
		t.Fatalf("httpHeader = %q, want %q, the key net/http files traceparent under", httpHeader, want)
	}
	t.Run("off carries the producer's context", func(t *testing.T) {
		var off *Tracer
		r := httptest.NewRequest("POST", "/api/events", nil)
		r.Header.Set("Traceparent", incoming)
		r, end := off.ServerSpan(r, "POST /api/events", "/api/events")
		end(202)
		if got := Format(trace.SpanContextFromContext(r.Context())); got != incoming {
			t.Errorf("context after ServerSpan = %s, want %s", got, incoming)
		}
	})
	t.Run("on starts a server span child of it", func(t *testing.T) {
		rec := tracetest.NewInMemoryExporter()
		tr, err := New(context.Background(), Config{Getenv: envOf(map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}), exporter: rec})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "/api/events", nil)
		r.Header.Set("Traceparent", incoming)
		r, end := tr.ServerSpan(r, "POST /api/events", "/api/events")
		end(http.StatusServiceUnavailable)
		if err := tr.provider.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
		spans := rec.GetSpans()
		if len(spans) != 1 {
			t.Fatalf("exported %d spans, want 1", len(spans))
		}
		s := spans[0]
		if s.Name != "POST /api/events" || s.SpanKind != trace.SpanKindServer || s.Parent.SpanID().String() != "00f067aa0ba902b7" ||
			s.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
			t.Errorf("span = %s kind %v parent %v trace %v", s.Name, s.SpanKind, s.Parent.SpanID(), s.SpanContext.TraceID())
		}
		if got := trace.SpanContextFromContext(r.Context()); got.SpanID() != s.SpanContext.SpanID() {
			t.Errorf("request context holds span %v, want the server span %v", got.SpanID(), s.SpanContext.SpanID())
		}
		attrs := map[string]any{}
		for _, kv := range s.Attributes {
			attrs[string(kv.Key)] = kv.Value.AsInterface()
		}
		if attrs["http.response.status_code"] != int64(503) || attrs["http.route"] != "/api/events" || attrs["error.type"] == nil {
			t.Errorf("attributes = %v", attrs)
		}
	})
}

var _ sdktrace.SpanExporter = (*tracetest.InMemoryExporter)(nil)

// TestOffPathAllocations: what an attempt costs with tracing off is one
// string of HeaderLen bytes: reading the stored context, deriving the
// attempt's and formatting it allocate nothing else.
func TestOffPathAllocations(t *testing.T) {
	h := map[string][]string{Header: {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}}
	var off *Tracer
	var out string
	allocs := testing.AllocsPerRun(1000, func() {
		out = Format(Child(off.Stored(h, "ten_1", "evt_1")))
	})
	if allocs > 1 || len(out) != HeaderLen {
		t.Errorf("Format(Child(Stored(...))) = %q with %v allocations, want %d bytes in at most 1", out, allocs, HeaderLen)
	}
}

// TestRootedContexts: with tracing on, the contexts made without a span
// (an event published with no span in its context, one stored without a
// traceparent) are sampled as the sampler decides for a root; off, never.
func TestRootedContexts(t *testing.T) {
	for _, tt := range []struct {
		sampler string
		want    bool
	}{
		{"parentbased_always_on", true},
		{"always_on", true},
		{"parentbased_always_off", false},
		{"traceidratio", true}, // ratio 1 by default
	} {
		tr, err := New(context.Background(), Config{Getenv: envOf(map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": tt.sampler}),
			exporter: tracetest.NewInMemoryExporter()})
		if err != nil {
			t.Fatal(err)
		}
		h := map[string][]string{}
		tr.Stamp(context.Background(), h)
		stamped, _ := Parse(h[Header][0])
		derived := tr.Stored(map[string][]string{}, "ten_1", "evt_1")
		if stamped.IsSampled() != tt.want || derived.IsSampled() != tt.want || derived.TraceID() != FromKey("ten_1:evt_1").TraceID() {
			t.Errorf("%s: stamped %v, derived %v; want sampled %v, the derived trace id kept", tt.sampler, stamped, derived, tt.want)
		}
		_ = tr.Shutdown(context.Background())
	}
	var off *Tracer
	if off.Stored(map[string][]string{}, "ten_1", "evt_1").IsSampled() {
		t.Errorf("tracing off: a derived context is sampled")
	}
}
