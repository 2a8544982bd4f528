// Package tracing sets up OpenTelemetry traces from the standard OTEL_*
// environment, and carries W3C Trace Context (traceparent) without the SDK
// when tracing is off.
//
// Tracing is off unless an OTLP endpoint is configured
// (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or
// OTEL_TRACES_EXPORTER is "otlp"; OTEL_SDK_DISABLED=true or
// OTEL_TRACES_EXPORTER=none keep it off. Off, New returns a nil *Tracer,
// whose methods do nothing and cost nothing: no SDK, no exporter, no span.
// Every event still carries a trace context and every webhook a
// traceparent, made here without the SDK (Fresh, Child).
package tracing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// ScopeName is the instrumentation scope of every span webhookd makes.
const ScopeName = "github.com/onestack/webhooks"

// DefaultServiceName is service.name when OTEL_SERVICE_NAME is unset.
const DefaultServiceName = "webhookd"

// Config says where tracing's settings come from.
type Config struct {
	// Getenv reads the OTEL_* variables (cmd passes os.Getenv; tests a
	// map of their own); nil means tracing is off.
	Getenv func(string) string
	// InstanceID is the service.instance.id resource attribute that tells
	// replicas apart in a trace (OTEL_RESOURCE_ATTRIBUTES may set it too);
	// empty means a random one per process.
	InstanceID string
	// Version is service.version.
	Version string

	// exporter replaces the OTLP exporter (tests in this package).
	exporter sdktrace.SpanExporter
}

// Tracer makes the spans of webhookd. A nil *Tracer is tracing off: every
// method is safe to call on it and does nothing.
type Tracer struct {
	provider *sdktrace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TraceContext
	// root is the sampler's decision for a trace without a parent: it
	// decides the trace contexts made here without a span (Rooted).
	root sdktrace.Sampler
}

// ErrConfig is wrapped by every error New returns for an OTEL_* value it
// cannot honour.
var ErrConfig = errors.New("tracing configuration")

// New sets tracing up from cfg's environment. It returns nil, tracing
// off, when nothing asks for it; Shutdown flushes and stops what it
// started.
func New(ctx context.Context, cfg Config) (*Tracer, error) {
	env := cfg.Getenv
	if env == nil {
		return nil, nil
	}
	if err := wantedErr(env); err != nil {
		return nil, err
	}
	if !wanted(env) {
		return nil, nil
	}
	sampler, root, err := samplerFrom(env)
	if err != nil {
		return nil, err
	}
	exp := cfg.exporter
	if exp == nil {
		opts, err := exporterOptions(env)
		if err != nil {
			return nil, err
		}
		exp, err = otlptracehttp.New(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("%w: OTLP exporter: %w", ErrConfig, err)
		}
	}
	res, err := resourceFrom(env, cfg)
	if err != nil {
		return nil, err
	}
	var bopts []sdktrace.BatchSpanProcessorOption
	if ms, ok, err := millis(env, "OTEL_BSP_SCHEDULE_DELAY"); err != nil {
		return nil, err
	} else if ok {
		bopts = append(bopts, sdktrace.WithBatchTimeout(ms))
	}
	if ms, ok, err := millis(env, "OTEL_BSP_EXPORT_TIMEOUT"); err != nil {
		return nil, err
	} else if ok {
		bopts = append(bopts, sdktrace.WithExportTimeout(ms))
	}
	if n, ok, err := positive(env, "OTEL_BSP_MAX_QUEUE_SIZE"); err != nil {
		return nil, err
	} else if ok {
		bopts = append(bopts, sdktrace.WithMaxQueueSize(n))
	}
	if n, ok, err := positive(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"); err != nil {
		return nil, err
	} else if ok {
		bopts = append(bopts, sdktrace.WithMaxExportBatchSize(n))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp, bopts...),
	)
	return &Tracer{provider: tp, tracer: tp.Tracer(ScopeName), root: root}, nil
}

// wanted reports whether the environment asks for traces.
func wanted(env func(string) string) bool {
	if strings.EqualFold(strings.TrimSpace(env("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	exporters := exportersOf(env)
	if len(exporters) == 0 {
		return env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	}
	return slices.Contains(exporters, "otlp")
}

// wantedErr refuses an exporter other than otlp and none (a comma list
// may name several, as the specification allows).
func wantedErr(env func(string) string) error {
	if strings.EqualFold(strings.TrimSpace(env("OTEL_SDK_DISABLED")), "true") {
		return nil
	}
	for _, e := range exportersOf(env) {
		if e != "otlp" && e != "none" {
			return fmt.Errorf("%w: OTEL_TRACES_EXPORTER %q: webhookd exports traces over OTLP only (otlp or none)", ErrConfig, e)
		}
	}
	return nil
}

// exportersOf lists OTEL_TRACES_EXPORTER's names.
func exportersOf(env func(string) string) []string {
	var out []string
	for e := range strings.SplitSeq(env("OTEL_TRACES_EXPORTER"), ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// Enabled reports whether spans are made and exported.
func (t *Tracer) Enabled() bool { return t != nil }

// Start starts a span child of ctx's span context (a remote one included).
// Call it only when Enabled.
func (t *Tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, name, opts...)
}

// Shutdown exports what is buffered and stops the exporter, within ctx.
func (t *Tracer) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	if err := t.provider.Shutdown(ctx); err != nil {
		return fmt.Errorf("tracing: flush and stop: %w", err)
	}
	return nil
}

// samplerFrom reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG
// (default parentbased_always_on, as the specification says). It returns
// the sampler and what it decides for a trace without a parent.
func samplerFrom(env func(string) string) (sampler, root sdktrace.Sampler, _ error) {
	name := strings.TrimSpace(env("OTEL_TRACES_SAMPLER"))
	ratio := 1.0
	if a := strings.TrimSpace(env("OTEL_TRACES_SAMPLER_ARG")); a != "" && strings.HasSuffix(name, "traceidratio") {
		f, err := strconv.ParseFloat(a, 64)
		if err != nil || f < 0 || f > 1 {
			return nil, nil, fmt.Errorf("%w: OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", ErrConfig, a)
		}
		ratio = f
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), sdktrace.AlwaysSample(), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), sdktrace.NeverSample(), nil
	case "parentbased_traceidratio":
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), sdktrace.TraceIDRatioBased(ratio), nil
	case "always_on":
		return sdktrace.AlwaysSample(), sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), sdktrace.NeverSample(), nil
	case "traceidratio":
		return sdktrace.TraceIDRatioBased(ratio), sdktrace.TraceIDRatioBased(ratio), nil
	}
	return nil, nil, fmt.Errorf("%w: OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio or parentbased_ one of them", ErrConfig, name)
}

// Rooted returns sc, a trace context made without a span (Fresh,
// FromKey), sampled as the sampler decides for a trace without a parent,
// so the spans of an event stored without a sampled context (an internal
// event, one published with no span in its context) are sampled like
// any other trace. Tracing off, sc is returned as it is.
func (t *Tracer) Rooted(sc trace.SpanContext) trace.SpanContext {
	if t == nil {
		return sc
	}
	res := t.root.ShouldSample(sdktrace.SamplingParameters{ParentContext: context.Background(), TraceID: sc.TraceID(), Name: "event"})
	if res.Decision == sdktrace.RecordAndSample {
		return sc.WithTraceFlags(sc.TraceFlags() | trace.FlagsSampled)
	}
	return sc
}

// exporterOptions reads the OTLP/HTTP exporter's endpoint, headers and
// timeout, the traces-specific variable winning over the general one.
func exporterOptions(env func(string) string) ([]otlptracehttp.Option, error) {
	proto := firstOf(env, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
	if proto != "" && proto != "http/protobuf" {
		return nil, fmt.Errorf("%w: OTLP protocol %q: webhookd exports over http/protobuf only", ErrConfig, proto)
	}
	endpoint := strings.TrimSpace(env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
	if endpoint == "" {
		base := strings.TrimSpace(env("OTEL_EXPORTER_OTLP_ENDPOINT"))
		if base == "" {
			base = "http://localhost:4318"
		}
		endpoint = strings.TrimSuffix(base, "/") + "/v1/traces"
	}
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: OTLP traces endpoint %q: want an http or https URL", ErrConfig, endpoint)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}
	if h := firstOf(env, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", "OTEL_EXPORTER_OTLP_HEADERS"); h != "" {
		headers, err := keyValues(h)
		if err != nil {
			return nil, fmt.Errorf("%w: OTLP headers: %w", ErrConfig, err)
		}
		opts = append(opts, otlptracehttp.WithHeaders(headers))
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"} {
		if d, ok, err := millis(env, name); err != nil {
			return nil, err
		} else if ok {
			opts = append(opts, otlptracehttp.WithTimeout(d))
			break
		}
	}
	return opts, nil
}

// resourceFrom describes this process: service.name (OTEL_SERVICE_NAME,
// else webhookd), service.version, service.instance.id and whatever
// OTEL_RESOURCE_ATTRIBUTES adds.
func resourceFrom(env func(string) string, cfg Config) (*resource.Resource, error) {
	attrs := map[string]string{"service.name": DefaultServiceName}
	if cfg.Version != "" {
		attrs["service.version"] = cfg.Version
	}
	if ra := strings.TrimSpace(env("OTEL_RESOURCE_ATTRIBUTES")); ra != "" {
		kv, err := keyValues(ra)
		if err != nil {
			return nil, fmt.Errorf("%w: OTEL_RESOURCE_ATTRIBUTES: %w", ErrConfig, err)
		}
		for k, v := range kv {
			attrs[k] = v
		}
	}
	if n := strings.TrimSpace(env("OTEL_SERVICE_NAME")); n != "" {
		attrs["service.name"] = n
	}
	switch {
	case cfg.InstanceID != "":
		attrs["service.instance.id"] = cfg.InstanceID
	case attrs["service.instance.id"] == "":
		var b [8]byte
		_, _ = rand.Read(b[:])
		attrs["service.instance.id"] = hex.EncodeToString(b[:])
	}
	kvs := make([]attribute.KeyValue, 0, len(attrs))
	for k, v := range attrs {
		kvs = append(kvs, attribute.String(k, v))
	}
	return resource.NewSchemaless(kvs...), nil
}

// keyValues reads "k1=v1,k2=v2" with URL-encoded values, as the OTEL_*
// list variables are written.
func keyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", item)
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("value of %q: %w", k, err)
		}
		out[k] = dv
	}
	return out, nil
}

func firstOf(env func(string) string, names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(env(n)); v != "" {
			return v
		}
	}
	return ""
}

// millis reads a variable of milliseconds, as OTEL_* timeouts are given.
func millis(env func(string) string, name string) (time.Duration, bool, error) {
	n, ok, err := positive(env, name)
	return time.Duration(n) * time.Millisecond, ok, err
}

func positive(env func(string) string, name string) (int, bool, error) {
	v := strings.TrimSpace(env(name))
	if v == "" {
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, false, fmt.Errorf("%w: %s %q: want a positive whole number", ErrConfig, name, v)
	}
	return n, true, nil
}
