package testenv_test

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/onestack/webhooks/internal/natstest"
	"github.com/onestack/webhooks/internal/poll"
	"github.com/onestack/webhooks/server"
	"github.com/onestack/webhooks/testenv"
	"github.com/onestack/webhooks/tracing"
)

// span is one span an OTLP receiver got, flattened for assertions.
type span struct {
	Name             string
	Kind             tracepb.Span_SpanKind
	TraceID, SpanID  string
	Parent, Instance string
	Attrs            map[string]string
	Events           []string
	Error            bool
}

// otlpReceiver is an OTLP/HTTP traces endpoint that decodes what it is
// sent (ExportTraceServiceRequest, protobuf) and keeps every span.
type otlpReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	spans []span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	o := &otlpReceiver{}
	o.srv = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.srv.Close)
	return o
}

func (o *otlpReceiver) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces of application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []span
	for _, rs := range req.GetResourceSpans() {
		instance := attrString(rs.GetResource().GetAttributes(), "service.instance.id")
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := span{
					Name: s.GetName(), Kind: s.GetKind(), Instance: instance,
					TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					Parent: hex.EncodeToString(s.GetParentSpanId()), Attrs: map[string]string{},
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR,
				}
				for _, kv := range s.GetAttributes() {
					sp.Attrs[kv.GetKey()] = anyString(kv.GetValue())
				}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, e.GetName())
				}
				got = append(got, sp)
			}
		}
	}
	o.mu.Lock()
	o.spans = append(o.spans, got...)
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func attrString(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			return anyString(kv.GetValue())
		}
	}
	return ""
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return v.String()
}

// trace returns the spans of one trace received so far.
func (o *otlpReceiver) trace(id string) []span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []span
	for _, s := range o.spans {
		if s.TraceID == id {
			out = append(out, s)
		}
	}
	return out
}

// named returns the spans of spans called name.
func named(spans []span, name string) []span {
	var out []span
	for _, s := range spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

var traceparentForm = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$`)

// attemptTraceIDs reads the traceId of every attempt of the one delivery
// of sub, through the API (the list and the delivery itself).
func attemptTraceIDs(t *testing.T, env *testenv.Env, ten testenv.Tenant, sub string, attempts int) []string {
	t.Helper()
	var ids []string
	untilCounted(t, "the attempts in the attempt log", func() bool {
		r, err := env.Do("GET", "/api/subscriptions/"+sub+"/deliveries", ten.APIKey, nil)
		if err != nil || r.Status != http.StatusOK {
			return false
		}
		var page struct {
			Data []struct {
				ID       string `json:"id"`
				Attempts []struct {
					TraceID *string `json:"traceId"`
				} `json:"attempts"`
			} `json:"data"`
		}
		if r.JSON(&page) != nil || len(page.Data) != 1 || len(page.Data[0].Attempts) != attempts {
			return false
		}
		var one struct {
			Attempts []struct {
				TraceID *string `json:"traceId"`
			} `json:"attempts"`
		}
		r, err = env.Do("GET", "/api/deliveries/"+page.Data[0].ID, ten.APIKey, nil)
		if err != nil || r.Status != http.StatusOK || r.JSON(&one) != nil {
			return false
		}
		ids = ids[:0]
		for i, a := range one.Attempts {
			if a.TraceID == nil || page.Data[0].Attempts[i].TraceID == nil || *a.TraceID != *page.Data[0].Attempts[i].TraceID {
				t.Fatalf("attempt %d: traceId %v in the delivery, %v in the list; want one id in both", i+1, a.TraceID, page.Data[0].Attempts[i].TraceID)
			}
			ids = append(ids, *a.TraceID)
		}
		return true
	})
	return ids
}

// TestTraceFollowsAnEventAcrossReplicasAndARetry: two replicas on one
// NATS export to an OTLP receiver. An event published on replica a with a
// producer's traceparent is delivered after a retry, the retry made by the
// other replica than the first attempt (the first one's replica is
// stopped in between). The receiver sees one trace holding the ingest
// request, the publish, the fan-out and both attempts (HTTP client spans,
// children of the stored context); each webhook's traceparent is its
// attempt's span, and the attempt log shows the trace id.
func TestTraceFollowsAnEventAcrossReplicasAndARetry(t *testing.T) {
	t.Parallel()
	otlp := newOTLPReceiver(t)
	nats := natstest.Start(t, natstest.Options{})
	start := func(name string) *testenv.Env {
		env := map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": otlp.srv.URL,
			"OTEL_BSP_SCHEDULE_DELAY":     "50",
		}
		return testenv.Start(t, testenv.Options{
			NATSURL: nats.ClientURL(),
			// Long enough for the first attempt's replica to be stopped
			// before the retry is due.
			Schedule: []time.Duration{5 * time.Second},
			Server: func(c *server.Config) {
				c.Tracing = tracing.Config{Getenv: func(k string) string { return env[k] }, InstanceID: name}
			},
		})
	}
	replicas := map[string]*testenv.Env{"replica-a": start("replica-a"), "replica-b": start("replica-b")}
	a := replicas["replica-a"]
	ten, err := a.CreateTenant("traced", 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := receiver(t)
	rc.Respond(func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	sub, err := a.Subscribe(ten, rc.URL(), "ticket.updated")
	if err != nil {
		t.Fatal(err)
	}
	// Both replicas must know the subscription before the event is fanned
	// out by either.
	poll.Until(t, 30*time.Second, "replica b sees the subscription", func() bool {
		_, ok := replicas["replica-b"].Store().Index().Subscription(ten.ID, sub.ID)
		return ok
	})
	const producerTrace, producerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	r, err := a.Do("POST", "/api/events", ten.APIKey, map[string]any{"type": "ticket.updated", "data": map[string]any{"ticketId": "T-1"}},
		"traceparent", "00-"+producerTrace+"-"+producerSpan+"-01")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("publish: %v %v", r, err)
	}
	var first span
	poll.Until(t, 30*time.Second, "the first attempt's span exported", func() bool {
		for _, s := range named(otlp.trace(producerTrace), "POST") {
			if s.Attrs["webhook.attempt"] == "1" {
				first = s
				return true
			}
		}
		return false
	})
	// The replica that made the first attempt stops (flushing its spans);
	// the other makes the retry from the stored schedule.
	if err := replicas[first.Instance].Close(); err != nil {
		t.Fatalf("stop %s: %v", first.Instance, err)
	}
	var other string
	for name := range replicas {
		if name != first.Instance {
			other = name
		}
	}
	got := rc.WaitFor(2, 60*time.Second)
	if len(got) != 2 {
		t.Fatalf("receiver got %d webhooks, want 2 (a 500, then the retry)", len(got))
	}
	var spans []span
	poll.Until(t, 30*time.Second, "the retry's span exported", func() bool {
		spans = otlp.trace(producerTrace)
		return len(named(spans, "POST")) == 2
	})

	ingest := named(spans, "POST /api/events")
	publish := named(spans, "publish ticket.updated")
	fanout := named(spans, "fanout ticket.updated")
	posts := named(spans, "POST")
	if len(ingest) != 1 || len(publish) != 1 || len(fanout) == 0 || len(posts) != 2 {
		t.Fatalf("trace %s: %d ingest, %d publish, %d fan-out, %d attempt spans; want 1, 1, at least 1, 2: %+v",
			producerTrace, len(ingest), len(publish), len(fanout), len(posts), spans)
	}
	if s := ingest[0]; s.Parent != producerSpan || s.Kind != tracepb.Span_SPAN_KIND_SERVER || s.Instance != "replica-a" ||
		s.Attrs["http.response.status_code"] != "202" {
		t.Errorf("ingest span = %+v; want a server span on replica-a, child of the producer's span, answered 202", s)
	}
	if s := publish[0]; s.Parent != ingest[0].SpanID || s.Kind != tracepb.Span_SPAN_KIND_PRODUCER || s.Attrs["webhook.tenant.id"] != ten.ID {
		t.Errorf("publish span = %+v; want a producer span, child of the ingest span", s)
	}
	for _, s := range fanout {
		if s.Parent != publish[0].SpanID || s.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
			t.Errorf("fan-out span = %+v; want a consumer span, child of the publish span", s)
		}
	}
	byAttempt := map[string]span{}
	for _, s := range posts {
		byAttempt[s.Attrs["webhook.attempt"]] = s
		if s.Parent != publish[0].SpanID || s.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.Attrs["http.request.method"] != "POST" ||
			s.Attrs["url.full"] != rc.URL()+"/" && s.Attrs["url.full"] != rc.URL() || s.Attrs["server.address"] != "127.0.0.1" ||
			s.Attrs["webhook.subscription.id"] != sub.ID || len(s.Events) != 1 {
			t.Errorf("attempt span = %+v; want an HTTP client span, child of the event's stored context, with its attributes and its record's event", s)
		}
	}
	one, two := byAttempt["1"], byAttempt["2"]
	if one.Attrs["http.response.status_code"] != "500" || one.Attrs["error.type"] != "500" || !one.Error {
		t.Errorf("first attempt span = %+v; want status 500, error.type 500, an error", one)
	}
	if two.Attrs["http.response.status_code"] != "200" || two.Error || two.Instance != other {
		t.Errorf("retry span = %+v; want status 200 on %s (the first attempt was on %s)", two, other, one.Instance)
	}
	// Each webhook's traceparent is its attempt's span; the attempt log
	// keeps the trace id.
	for i, w := range got {
		m := traceparentForm.FindStringSubmatch(w.Header.Get("traceparent"))
		want := byAttempt[strconv.Itoa(i+1)]
		if m == nil || m[1] != producerTrace || m[2] != want.SpanID || m[3] != "01" {
			t.Errorf("webhook %d traceparent = %q; want 00-%s-%s-01", i+1, w.Header.Get("traceparent"), producerTrace, want.SpanID)
		}
	}
	for i, id := range attemptTraceIDs(t, replicas[other], ten, sub.ID, 2) {
		if id != producerTrace {
			t.Errorf("attempt %d traceId = %s, want %s", i+1, id, producerTrace)
		}
	}

	// A test event, stored without a span of its own, is a trace of its
	// own, sampled as a new trace is: its attempt's span is exported.
	if r, err := replicas[other].Do("POST", "/api/subscriptions/"+sub.ID+"/test", ten.APIKey, nil); err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("send a test event: %v %v", r, err)
	}
	got = rc.WaitFor(3, 30*time.Second)
	if len(got) != 3 {
		t.Fatalf("receiver got %d webhooks, want the test event's as the third", len(got))
	}
	m := traceparentForm.FindStringSubmatch(got[2].Header.Get("traceparent"))
	if m == nil || m[1] == producerTrace || m[3] != "01" {
		t.Fatalf("test event's traceparent = %q; want a sampled trace of its own", got[2].Header.Get("traceparent"))
	}
	poll.Until(t, 30*time.Second, "the test event's attempt span exported", func() bool {
		posts := named(otlp.trace(m[1]), "POST")
		return len(posts) == 1 && posts[0].SpanID == m[2] && posts[0].Attrs["webhook.event.type"] == "webhook.test"
	})
}

// TestTraceparentWithTracingOff: without any OTEL_* setting, every webhook
// still carries a well-formed traceparent: one trace id for every attempt
// of an event (here a 500, then the retry), a fresh span id each, flags
// 00, the same id in the attempt log; a producer's traceparent gives its
// trace id. A subscription with sendTraceparent false gets none, until a
// PATCH turns it back on; GET shows the field.
func TestTraceparentWithTracingOff(t *testing.T) {
	t.Parallel()
	env := testenv.Start(t, testenv.Options{})
	ten, err := env.CreateTenant("untraced", 0)
	if err != nil {
		t.Fatal(err)
	}
	on := receiver(t)
	on.Respond(func(n int, _ *http.Request) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	subOn, err := env.Subscribe(ten, on.URL(), "ticket.updated")
	if err != nil {
		t.Fatal(err)
	}
	off := receiver(t)
	r, err := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": off.URL(), "eventTypes": []string{"ticket.updated"}, "sendTraceparent": false})
	if err != nil || r.Status != http.StatusCreated {
		t.Fatalf("create with sendTraceparent false: %v %v", r, err)
	}
	var subOff struct {
		ID              string `json:"id"`
		SendTraceparent bool   `json:"sendTraceparent"`
	}
	if err := r.JSON(&subOff); err != nil || subOff.SendTraceparent {
		t.Fatalf("created subscription shows sendTraceparent %v (%v), want false", subOff.SendTraceparent, err)
	}
	if r, _ := env.Do("GET", "/api/subscriptions/"+subOn.ID, ten.APIKey, nil); r == nil || !regexp.MustCompile(`"sendTraceparent":true`).Match(r.Body) {
		t.Errorf("GET of a default subscription = %v, want sendTraceparent true", r)
	}
	if r, _ := env.Do("POST", "/api/subscriptions", ten.APIKey, map[string]any{"url": off.URL(), "eventTypes": []string{"ticket.updated"}, "sendTraceparent": "no"}); r == nil || r.Status != http.StatusBadRequest {
		t.Errorf("sendTraceparent \"no\" = %v, want 400", r)
	}

	if _, err := env.Publish(ten, "ticket.updated", map[string]any{"ticketId": "T-1"}); err != nil {
		t.Fatal(err)
	}
	got := on.WaitFor(2, 30*time.Second)
	if len(got) != 2 {
		t.Fatalf("receiver got %d webhooks, want 2 (a 500, then the retry)", len(got))
	}
	m1 := traceparentForm.FindStringSubmatch(got[0].Header.Get("traceparent"))
	m2 := traceparentForm.FindStringSubmatch(got[1].Header.Get("traceparent"))
	if m1 == nil || m2 == nil {
		t.Fatalf("traceparents %q, %q: want the W3C form", got[0].Header.Get("traceparent"), got[1].Header.Get("traceparent"))
	}
	if m1[1] != m2[1] || m1[2] == m2[2] || m1[3] != "00" || m2[3] != "00" {
		t.Errorf("traceparents %s, %s: want one trace id, two span ids, flags 00", m1[0], m2[0])
	}
	for i, id := range attemptTraceIDs(t, env, ten, subOn.ID, 2) {
		if id != m1[1] {
			t.Errorf("attempt %d traceId = %s, want the header's %s", i+1, id, m1[1])
		}
	}
	if w := off.WaitFor(1, 30*time.Second); len(w) != 1 {
		t.Errorf("sendTraceparent false: got %d webhooks, want one", len(w))
	} else if tp := w[0].Header.Get("traceparent"); tp != "" {
		t.Errorf("sendTraceparent false: traceparent %q, want none", tp)
	}

	// A producer's trace, through the batch route; the PATCH turns the
	// header back on.
	if r, err := env.Do("PATCH", "/api/subscriptions/"+subOff.ID, ten.APIKey, map[string]any{"sendTraceparent": true}); err != nil || r.Status != http.StatusOK ||
		!regexp.MustCompile(`"sendTraceparent":true`).Match(r.Body) {
		t.Fatalf("PATCH sendTraceparent true: %v %v", r, err)
	}
	const producerTrace = "0af7651916cd43dd8448eb211c80319c"
	r, err = env.Do("POST", "/api/events/batch", ten.APIKey, map[string]any{"events": []map[string]any{{"type": "ticket.updated", "data": map[string]any{"ticketId": "T-2"}}}},
		"traceparent", "00-"+producerTrace+"-b7ad6b7169203331-00")
	if err != nil || r.Status != http.StatusAccepted {
		t.Fatalf("publish batch: %v %v", r, err)
	}
	for name, rc := range map[string]*testenv.Receiver{"default": on, "turned back on": off} {
		n := map[string]int{"default": 3, "turned back on": 2}[name]
		w := rc.WaitFor(n, 30*time.Second)
		if len(w) != n {
			t.Fatalf("%s receiver got %d webhooks, want %d", name, len(w), n)
		}
		if m := traceparentForm.FindStringSubmatch(w[n-1].Header.Get("traceparent")); m == nil || m[1] != producerTrace {
			t.Errorf("%s receiver: traceparent %q, want the producer's trace %s", name, w[n-1].Header.Get("traceparent"), producerTrace)
		}
	}
}
