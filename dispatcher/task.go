package dispatcher

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
)

// Streams, subjects and headers of delivery tasks.
const (
	// DeliveriesStream keeps delivery tasks and scheduled retries.
	DeliveriesStream = "DELIVERIES"
	// AttemptsStream is the attempt log.
	AttemptsStream = "ATTEMPTS"

	taskSubjectPrefix = "deliveries."
	// orderedPrefix carries the tasks of FIFO subscriptions, each read by
	// its own consumer, one at a time.
	orderedPrefix      = "ordered."
	retrySubjectPrefix = "retries."
	attemptPrefix      = "attempts."

	hdrDelivery  = "Delivery-Id"
	hdrEventType = "Event-Type"
	hdrAttempt   = "Attempt"
	hdrCreated   = "Delivery-Created"
	hdrEventSeq  = "Event-Seq"
	// hdrHistory carries the attempts made so far, as JSON, so each
	// attempt can log the whole delivery without reading storage.
	hdrHistory = "Attempts"
	// hdrManual marks an attempt asked for by hand: one attempt, no
	// schedule after it, and made even if the subscription is disabled.
	hdrManual = "Manual"
)

// taskSubject is the subject of a subscription's delivery tasks.
func taskSubject(tenant, sub string, ordered bool) string {
	if ordered {
		return orderedPrefix + tenant + "." + sub
	}
	return taskSubjectPrefix + tenant + "." + sub
}

func parseTaskSubject(s string) (tenant, sub string, ordered, ok bool) {
	rest, ok := strings.CutPrefix(s, taskSubjectPrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(s, orderedPrefix); !ok {
			return "", "", false, false
		}
		ordered = true
	}
	tenant, sub, ok = strings.Cut(rest, ".")
	return tenant, sub, ordered, ok && tenant != "" && sub != ""
}

// task is one delivery attempt to make: the delivery's state as the task
// message carries it.
type task struct {
	msg       jetstream.Msg
	tenant    string
	sub       string
	delivery  string
	eventID   string
	eventType string
	eventSeq  uint64
	attempt   int
	created   time.Time
	history   []Attempt
	manual    bool
	// ordered tasks belong to a FIFO subscription: retried in place.
	ordered bool
}

func parseTask(m jetstream.Msg) (task, error) {
	tenant, sub, ordered, ok := parseTaskSubject(m.Subject())
	if !ok {
		return task{}, fmt.Errorf("task subject %q: malformed", m.Subject())
	}
	h := m.Headers()
	t := task{
		msg: m, tenant: tenant, sub: sub, ordered: ordered,
		delivery:  h.Get(hdrDelivery),
		eventID:   h.Get(events.HeaderEventID),
		eventType: h.Get(hdrEventType),
		manual:    h.Get(hdrManual) != "",
	}
	t.attempt, _ = strconv.Atoi(h.Get(hdrAttempt))
	if t.attempt < 1 {
		t.attempt = 1
	}
	t.eventSeq, _ = strconv.ParseUint(h.Get(hdrEventSeq), 10, 64)
	if ns, err := strconv.ParseInt(h.Get(hdrCreated), 10, 64); err == nil {
		t.created = time.Unix(0, ns).UTC()
	}
	if v := h.Get(hdrHistory); v != "" {
		if err := json.Unmarshal([]byte(v), &t.history); err != nil {
			return task{}, fmt.Errorf("task on %s: attempts header: %w", m.Subject(), err)
		}
	}
	if t.delivery == "" || t.eventID == "" {
		return task{}, fmt.Errorf("task on %s: missing delivery or event id", m.Subject())
	}
	return t, nil
}

// header encodes the task's state for its message.
func (t *task) header() nats.Header {
	h := nats.Header{
		hdrDelivery:          {t.delivery},
		events.HeaderEventID: {t.eventID},
		hdrEventType:         {t.eventType},
		hdrAttempt:           {strconv.Itoa(t.attempt)},
		hdrCreated:           {strconv.FormatInt(t.created.UnixNano(), 10)},
	}
	if t.eventSeq != 0 {
		h[hdrEventSeq] = []string{strconv.FormatUint(t.eventSeq, 10)}
	}
	if len(t.history) > 0 {
		b, _ := json.Marshal(t.history) // JSON escapes control characters: safe in a header
		h[hdrHistory] = []string{string(b)}
	}
	if t.manual {
		h[hdrManual] = []string{"1"}
	}
	return h
}

// newTaskMsg builds the message of t. msgID deduplicates it in the stream:
// "<event>:<subscription>" for fan-out.
func newTaskMsg(t *task, msgID string, body []byte) *nats.Msg {
	h := t.header()
	if msgID != "" {
		h[nats.MsgIdHdr] = []string{msgID}
	}
	return &nats.Msg{Subject: taskSubject(t.tenant, t.sub, t.ordered), Header: h, Data: body}
}

// retryMsg builds the schedule that re-publishes t at at. key names this
// schedule: it is both its subject's last token and its message id, so a
// repeated publication (after a crash) is stored once, and no two schedules
// share a subject. Sharing one would be unsafe: the server purges a fired
// schedule's whole subject, which measured here lost a later schedule
// published on it.
func retryMsg(t *task, at time.Time, key string, body []byte) *nats.Msg {
	h := t.header()
	h[jetstream.ScheduleHeader] = []string{"@at " + at.UTC().Format(time.RFC3339Nano)}
	h[jetstream.ScheduleTargetHeader] = []string{taskSubject(t.tenant, t.sub, t.ordered)}
	h[nats.MsgIdHdr] = []string{t.delivery + "." + key}
	return &nats.Msg{Subject: retrySubjectPrefix + t.delivery + "." + key, Header: h, Data: body}
}

// ensureStreams creates the deliveries stream (tasks and their schedules)
// and the attempt log.
func ensureStreams(ctx context.Context, js jetstream.JetStream, c Config) error {
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              DeliveriesStream,
		Description:       "Delivery tasks and scheduled retries",
		Subjects:          []string{taskSubjectPrefix + ">", retrySubjectPrefix + ">", orderedPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.WorkQueuePolicy,
		Duplicates:        c.DedupeWindow,
		Replicas:          c.Replicas,
		AllowMsgSchedules: true,
	}); err != nil {
		return fmt.Errorf("ensure stream %s: %w", DeliveriesStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              AttemptsStream,
		Description:       "The latest snapshot of every delivery, its attempts included",
		MaxMsgsPerSubject: 1,
		AllowDirect:       true,
		Subjects:          []string{attemptPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		MaxAge:            c.AttemptRetention,
		Replicas:          c.Replicas,
		Discard:           jetstream.DiscardOld,
	}); err != nil {
		return fmt.Errorf("ensure stream %s: %w", AttemptsStream, err)
	}
	return nil
}
