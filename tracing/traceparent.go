package tracing

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
)

// Header is the W3C Trace Context header (and NATS message header) that
// carries a span context, spelt as the recommendation writes it.
const Header = "traceparent"

// HeaderLen is the length of a version 00 traceparent value:
// 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>.
const HeaderLen = 55

// Parse reads a traceparent value. It accepts version 00 exactly, and a
// later version (not ff) whose first 55 characters have version 00's form,
// as the recommendation asks; an all-zero trace or span id, upper-case hex
// or any other deviation is refused. The span context is marked remote.
func Parse(v string) (trace.SpanContext, bool) {
	if len(v) < HeaderLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return trace.SpanContext{}, false
	}
	var ver [1]byte
	if !decodeHex(ver[:], v[0:2]) || ver[0] == 0xff {
		return trace.SpanContext{}, false
	}
	if ver[0] == 0 && len(v) != HeaderLen || ver[0] != 0 && len(v) > HeaderLen && v[HeaderLen] != '-' {
		return trace.SpanContext{}, false
	}
	var cfg trace.SpanContextConfig
	var flags [1]byte
	if !decodeHex(cfg.TraceID[:], v[3:35]) || !decodeHex(cfg.SpanID[:], v[36:52]) || !decodeHex(flags[:], v[53:55]) {
		return trace.SpanContext{}, false
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0]) & trace.FlagsSampled
	cfg.Remote = true
	sc := trace.NewSpanContext(cfg)
	return sc, sc.IsValid()
}

// decodeHex decodes lower-case hex src into dst, len(src) == 2*len(dst).
func decodeHex(dst []byte, src string) bool {
	for i := range dst {
		hi, ok1 := nibble(src[2*i])
		lo, ok2 := nibble(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func nibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Append appends sc as a version 00 traceparent value (HeaderLen bytes).
func Append(dst []byte, sc trace.SpanContext) []byte {
	tid, sid := sc.TraceID(), sc.SpanID()
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, tid[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, sid[:])
	dst = append(dst, '-')
	return hex.AppendEncode(dst, []byte{byte(sc.TraceFlags() & trace.FlagsSampled)})
}

// Format returns sc as a version 00 traceparent value.
func Format(sc trace.SpanContext) string {
	var b [HeaderLen]byte
	return string(Append(b[:0], sc))
}

// Fresh returns a new span context of its own trace, not sampled, made
// without the SDK: what an event published while tracing is off carries.
func Fresh() trace.SpanContext {
	var cfg trace.SpanContextConfig
	for cfg.TraceID == (trace.TraceID{}) {
		putUint64(cfg.TraceID[:8], rand.Uint64())
		putUint64(cfg.TraceID[8:], rand.Uint64())
	}
	cfg.SpanID = newSpanID()
	return trace.NewSpanContext(cfg)
}

// Child returns a span context in parent's trace with a fresh span id and
// parent's sampled flag, made without the SDK: the context of an attempt
// while tracing is off. An invalid parent gets a fresh trace.
func Child(parent trace.SpanContext) trace.SpanContext {
	if !parent.TraceID().IsValid() {
		return Fresh()
	}
	return trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: parent.TraceID(), SpanID: newSpanID(), TraceFlags: parent.TraceFlags() & trace.FlagsSampled,
	})
}

// FromKey returns the span context an event stored without one is given:
// its trace id (and span id) derived from key (the event's tenant-scoped
// id), so every attempt of that event shares one trace id, on any replica.
func FromKey(key string) trace.SpanContext {
	sum := sha256.Sum256([]byte(key))
	var cfg trace.SpanContextConfig
	copy(cfg.TraceID[:], sum[:16])
	copy(cfg.SpanID[:], sum[16:24])
	if !cfg.TraceID.IsValid() {
		cfg.TraceID[15] = 1
	}
	if !cfg.SpanID.IsValid() {
		cfg.SpanID[7] = 1
	}
	cfg.Remote = true
	return trace.NewSpanContext(cfg)
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for id == (trace.SpanID{}) {
		putUint64(id[:], rand.Uint64())
	}
	return id
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
}
