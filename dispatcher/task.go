package dispatcher

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/events"
)

// Streams, subjects and headers of delivery tasks.
const (
	// DeliveriesStream keeps delivery tasks and scheduled retries.
	DeliveriesStream = "DELIVERIES"
	// AttemptsStream is the attempt log.
	AttemptsStream = "ATTEMPTS"

	taskSubjectPrefix  = "deliveries."
	retrySubjectPrefix = "retries."
	attemptPrefix      = "attempts."

	hdrDelivery  = "Delivery-Id"
	hdrEventType = "Event-Type"
	hdrAttempt   = "Attempt"
	hdrCreated   = "Delivery-Created"
)

// taskSubject is the subject of a subscription's delivery tasks.
func taskSubject(tenant, sub string) string {
	return taskSubjectPrefix + tenant + "." + sub
}

func parseTaskSubject(s string) (tenant, sub string, ok bool) {
	rest, ok := strings.CutPrefix(s, taskSubjectPrefix)
	if !ok {
		return "", "", false
	}
	tenant, sub, ok = strings.Cut(rest, ".")
	return tenant, sub, ok && tenant != "" && sub != ""
}

// NewDeliveryID returns a fresh delivery id.
func NewDeliveryID() string { return "dlv_" + ulid.Make().String() }

// task is one delivery attempt to make, as read from the stream.
type task struct {
	msg       jetstream.Msg
	tenant    string
	sub       string
	delivery  string
	eventID   string
	eventType string
	attempt   int
	created   time.Time
}

func parseTask(m jetstream.Msg) (task, error) {
	tenant, sub, ok := parseTaskSubject(m.Subject())
	if !ok {
		return task{}, fmt.Errorf("task subject %q: malformed", m.Subject())
	}
	h := m.Headers()
	t := task{
		msg: m, tenant: tenant, sub: sub,
		delivery:  h.Get(hdrDelivery),
		eventID:   h.Get(events.HeaderEventID),
		eventType: h.Get(hdrEventType),
	}
	t.attempt, _ = strconv.Atoi(h.Get(hdrAttempt))
	if t.attempt < 1 {
		t.attempt = 1
	}
	if ns, err := strconv.ParseInt(h.Get(hdrCreated), 10, 64); err == nil {
		t.created = time.Unix(0, ns).UTC()
	}
	if t.delivery == "" || t.eventID == "" {
		return task{}, fmt.Errorf("task on %s: missing delivery or event id", m.Subject())
	}
	return t, nil
}

// newTaskMsg builds the first task of a delivery. msgID deduplicates it in
// the stream: "<event>:<subscription>" for fan-out.
func newTaskMsg(tenant, sub, delivery, eventID, eventType, msgID string, created time.Time, body []byte) *nats.Msg {
	h := nats.Header{
		hdrDelivery:          {delivery},
		events.HeaderEventID: {eventID},
		hdrEventType:         {eventType},
		hdrAttempt:           {"1"},
		hdrCreated:           {strconv.FormatInt(created.UnixNano(), 10)},
	}
	if msgID != "" {
		h[nats.MsgIdHdr] = []string{msgID}
	}
	return &nats.Msg{Subject: taskSubject(tenant, sub), Header: h, Data: body}
}

// retryMsg builds the schedule that re-publishes t as attempt next at at.
// key names this schedule: it is both its subject's last token and its
// message id, so a repeated publication (after a crash) is stored once,
// and no two schedules share a subject. Sharing one would be unsafe: the
// server purges a fired schedule's whole subject, which measured here lost
// a later schedule published on it.
func retryMsg(t *task, next int, at time.Time, key string, body []byte) *nats.Msg {
	h := nats.Header{
		hdrDelivery:                    {t.delivery},
		events.HeaderEventID:           {t.eventID},
		hdrEventType:                   {t.eventType},
		hdrAttempt:                     {strconv.Itoa(next)},
		hdrCreated:                     {strconv.FormatInt(t.created.UnixNano(), 10)},
		jetstream.ScheduleHeader:       {"@at " + at.UTC().Format(time.RFC3339Nano)},
		jetstream.ScheduleTargetHeader: {taskSubject(t.tenant, t.sub)},
		nats.MsgIdHdr:                  {t.delivery + "." + key},
	}
	return &nats.Msg{Subject: retrySubjectPrefix + t.delivery + "." + key, Header: h, Data: body}
}

// ensureStreams creates the deliveries stream (tasks and their schedules)
// and the attempt log.
func ensureStreams(ctx context.Context, js jetstream.JetStream, c Config) error {
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              DeliveriesStream,
		Description:       "Delivery tasks and scheduled retries",
		Subjects:          []string{taskSubjectPrefix + ">", retrySubjectPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.WorkQueuePolicy,
		Duplicates:        c.DedupeWindow,
		Replicas:          c.Replicas,
		AllowMsgSchedules: true,
	}); err != nil {
		return fmt.Errorf("ensure stream %s: %w", DeliveriesStream, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        AttemptsStream,
		Description: "Every delivery attempt",
		Subjects:    []string{attemptPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      c.AttemptRetention,
		Replicas:    c.Replicas,
		Discard:     jetstream.DiscardOld,
	}); err != nil {
		return fmt.Errorf("ensure stream %s: %w", AttemptsStream, err)
	}
	return nil
}
