package limiter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/prometheus/client_golang/prometheus"
)

// CounterStream is the JetStream counter stream that holds the windows.
const CounterStream = "RATELIMITS"

const subjectPrefix = "ratelimit."

// NATS counts in a JetStream counter stream (AllowMsgCounter, server ≥
// 2.12): each Add is one publish with a Nats-Incr header, and the server
// answers with the new total, so every replica shares one exact count in
// one round trip. Past a few publishes in flight for one counter, the
// Adds that arrive are summed into the next one (see coalescer): a burst
// of a tenant's requests costs a publish per round trip, not one each.
// Old windows expire with the stream's MaxAge.
//
// When NATS fails (a request unanswered, the connection down), that
// request is counted in a Local store instead (fail open, per replica);
// after failuresToLocal failures in a row the store counts locally, says so
// once in a log line and in the webhooks_ratelimit_fallback gauge, probes
// NATS now and then, and goes back to it once it has answered steadily
// (see switchover): a flapping connection does not switch it back and
// forth.
type NATS struct {
	nc       *nats.Conn
	timeout  time.Duration
	fallback *Local
	logger   *slog.Logger
	gauge    prometheus.Gauge
	mode     switchover
	now      func() time.Time
	batch    *coalescer
}

// NewNATS creates the counter stream if needed and returns the store.
// maxBytes bounds the stream (0: no bound); past it the oldest counters go
// first (DiscardOld), which are those of windows already ended: the stream
// holds one message per tenant and window, a few windows long.
func NewNATS(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, replicas int, maxBytes int64, reg prometheus.Registerer, logger *slog.Logger) (*NATS, error) {
	if replicas <= 0 {
		replicas = 1
	}
	if maxBytes <= 0 {
		maxBytes = -1
	}
	_, err := jsretry.Provision(ctx, func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              CounterStream,
			Description:       "Per-tenant rate-limit windows",
			Subjects:          []string{subjectPrefix + ">"},
			Storage:           jetstream.FileStorage,
			Replicas:          replicas,
			AllowMsgCounter:   true,
			AllowDirect:       true,
			MaxAge:            3 * Window,
			MaxMsgsPerSubject: 1,
			MaxBytes:          maxBytes,
			Discard:           jetstream.DiscardOld,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", CounterStream, err)
	}
	s := &NATS{nc: nc, timeout: 500 * time.Millisecond, fallback: NewLocal(), logger: logger, now: time.Now}
	s.batch = newCoalescer(s.add, counterCallsInFlight)
	s.gauge = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "webhooks_ratelimit_fallback",
		Help: "1 while the rate limiter counts locally because NATS is unreachable.",
	})
	if reg != nil {
		reg.MustRegister(s.gauge)
	}
	return s, nil
}

// counterCallsInFlight is how many counter publishes of one tenant's
// window may be in flight before the next requests' units are summed into
// one (see coalescer): enough that a steady rate rarely waits on a round
// trip, few enough that a burst costs a handful of publishes.
const counterCallsInFlight = 4

// pubAck is the server's answer to a counter increment.
type pubAck struct {
	Error *struct {
		Description string `json:"description"`
	} `json:"error"`
	Value string `json:"val"`
}

// counterValue reads the total from the server's usual answer to a
// counter increment, {"stream":"RATELIMITS","seq":7,"val":"12"}, without
// reflection. Any other answer (an error among them) is false, and is
// read as JSON.
func counterValue(reply []byte) (int64, bool) {
	if bytes.Contains(reply, []byte(`"error"`)) {
		return 0, false
	}
	_, rest, ok := bytes.Cut(reply, []byte(`"val":"`))
	if !ok {
		return 0, false
	}
	v, rest, ok := bytes.Cut(rest, []byte(`"`))
	if !ok || string(rest) != "}" {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Add implements Store.
func (s *NATS) Add(ctx context.Context, tenant string, window, delta int64) (int64, error) {
	return s.batch.Add(ctx, tenant, window, delta)
}

// add is one Add's publish (or, NATS failing, its count in the fallback);
// it is bounded by s.timeout.
func (s *NATS) add(ctx context.Context, tenant string, window, delta int64) (int64, error) {
	if !s.mode.tryShared(s.now()) {
		return s.fallback.Add(ctx, tenant, window, delta)
	}
	if !s.nc.IsConnected() {
		return s.degrade(ctx, tenant, window, delta, nats.ErrConnectionClosed)
	}
	// A request bounded by a timeout rather than a context: nats.go
	// keeps a pool of timers for it, where a context would cost a timer
	// and a context per request.
	var subject [64]byte
	m := &nats.Msg{
		Subject: string(strconv.AppendInt(append(append(append(subject[:0], subjectPrefix...), tenant...), '.'), window, 10)),
		Header:  nats.Header{"Nats-Incr": {strconv.FormatInt(delta, 10)}},
	}
	reply, err := s.nc.RequestMsg(m, s.timeout)
	if err != nil {
		return s.degrade(ctx, tenant, window, delta, err)
	}
	n, ok := counterValue(reply.Data)
	if !ok {
		var ack pubAck
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			return s.degrade(ctx, tenant, window, delta, fmt.Errorf("decode counter reply: %w", err))
		}
		if ack.Error != nil {
			return s.degrade(ctx, tenant, window, delta, errors.New(ack.Error.Description))
		}
		if n, err = strconv.ParseInt(ack.Value, 10, 64); err != nil {
			return s.degrade(ctx, tenant, window, delta, fmt.Errorf("counter value %q: %w", ack.Value, err))
		}
	}
	if s.mode.result(s.now(), true) == toShared {
		s.gauge.Set(0)
		s.logger.Info("rate limiter: NATS answers steadily again; counting in the shared store")
	}
	return n, nil
}

// degrade counts a request NATS did not answer locally, and records the
// failure.
func (s *NATS) degrade(ctx context.Context, tenant string, window, delta int64, cause error) (int64, error) {
	if s.mode.result(s.now(), false) == toLocal {
		s.gauge.Set(1)
		s.logger.Warn("rate limiter: NATS unreachable; counting locally on this replica until it answers steadily again", "err", cause)
	}
	return s.fallback.Add(ctx, tenant, window, delta)
}

// Degraded reports whether the store is counting locally.
func (s *NATS) Degraded() bool { return s.mode.isLocal() }
