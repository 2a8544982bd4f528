package dispatcher

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/jobs"
	"github.com/onestack/webhooks/problem"
	"github.com/onestack/webhooks/subscriptions"
)

// Jobs does the work of replay and recovery jobs (package jobs), batch by
// batch, for any replica; a small replay or recovery runs the same code at
// once, in the request.
//
//   - A replay delivers again every retained event of the subscription's
//     types, stored from Since to Until, that its filter accepts, as new
//     deliveries. Each delivery's id is derived from the job, the batch's
//     planning time and the event's sequence, so a batch sent again after
//     a crash makes the same deliveries: those the attempt log knows are
//     skipped, and the parked records of the others carry the same message
//     ids as before, which the deliveries stream drops as duplicates while
//     it still holds them.
//   - A recovery resends the subscription's deliveries created from Since
//     to Until whose status is the job's (failed, or skipped), as manual
//     retries of the same deliveries: exactly one more attempt each, whose
//     outcome becomes the delivery's status (no schedule follows it). A
//     batch sent again skips the deliveries whose log already has the
//     attempt planned for them, and a parked retry is made only if its
//     attempt is still to be made, so each delivery gets one more attempt,
//     not two.
//
// What a job parks goes on the subscription's lane, read at the
// subscription's own pace by the consumer that reads its other parked
// deliveries, while its live deliveries keep going through memory.
type Jobs struct {
	d *Dispatcher
}

// Jobs returns the dispatcher's worker of replay and recovery jobs.
func (d *Dispatcher) Jobs() *Jobs { return &Jobs{d: d} }

var _ jobs.Worker = (*Jobs)(nil)

// Bounds of one batch's reading.
const (
	// replayScanFactor bounds the events one replay batch reads to this
	// many times the batch: a range of mostly other types is read over
	// several batches, never in one unbounded pass.
	replayScanFactor = 10
	// fetchBatch is how many events one fetch reads.
	fetchBatch = 256
)

// recoverItem is one delivery a recovery batch resends.
type recoverItem struct {
	Delivery string `json:"d"`
	Event    string `json:"e"`
	Type     string `json:"t"`
	Seq      uint64 `json:"q"`
	Created  int64  `json:"c"` // Unix ns
	Attempt  int    `json:"n"`
}

// replayItem is one event a replay batch delivers again.
type replayItem struct {
	Seq   uint64 `json:"q"`
	Event string `json:"e"`
	Type  string `json:"t"`
}

// ErrSubscriptionGone fails a job whose subscription was deleted. It is a
// problem.ErrNotFound that names nothing, which the API answers as a
// resource not found.
var ErrSubscriptionGone error = subscriptionGone{}

type subscriptionGone struct{}

func (subscriptionGone) Error() string        { return "the subscription was deleted" }
func (subscriptionGone) Is(target error) bool { return target == problem.ErrNotFound }

// subscription finds the job's subscription; a deleted one fails the job.
func (w *Jobs) subscription(ctx context.Context, j jobs.Job) (*subscriptions.Subscription, error) {
	s, err := w.d.subscription(ctx, j.TenantID, j.SubscriptionID)
	if errors.Is(err, subscriptions.ErrNotFound) {
		return nil, jobs.Permanent(ErrSubscriptionGone)
	}
	return s, err
}

// Count implements jobs.Worker.
func (w *Jobs) Count(ctx context.Context, j jobs.Job) (int64, error) {
	if j.Kind == jobs.KindRecover {
		return w.countRecover(ctx, j)
	}
	return w.countReplay(ctx, j)
}

// Plan implements jobs.Worker.
func (w *Jobs) Plan(ctx context.Context, j jobs.Job, max int) (jobs.Batch, error) {
	if j.Kind == jobs.KindRecover {
		return w.planRecover(ctx, j, max)
	}
	return w.planReplay(ctx, j, max)
}

// Send implements jobs.Worker.
func (w *Jobs) Send(ctx context.Context, j jobs.Job, b jobs.Batch) error {
	sub, err := w.subscription(ctx, j)
	if err != nil {
		return err
	}
	// What an earlier run of this batch logged must be seen.
	if err := w.d.index.Sync(ctx); err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	if j.Kind == jobs.KindRecover {
		return w.sendRecover(ctx, j, sub, b)
	}
	return w.sendReplay(ctx, j, sub, b)
}

// Backlog implements jobs.Worker: the parked records waiting on the lane
// the job sends to.
func (w *Jobs) Backlog(ctx context.Context, j jobs.Job) (int, error) {
	k := w.lane(ctx, j)
	info, err := w.d.deliveries.Info(ctx, jetstream.WithSubjectFilter(k.subject()))
	if err != nil {
		return 0, fmt.Errorf("job %s: read its backlog: %w", j.ID, err)
	}
	return int(info.State.Subjects[k.subject()]), nil
}

// lane is where the job's records go: a recovery's manual retries on the
// unordered lane (outside a FIFO order, as manual retries are), a replay's
// on its subscription's own.
func (w *Jobs) lane(ctx context.Context, j jobs.Job) parkKey {
	k := parkKey{tenant: j.TenantID, sub: j.SubscriptionID, lane: laneUnordered}
	if j.Kind == jobs.KindReplay {
		if s, err := w.d.subscription(ctx, j.TenantID, j.SubscriptionID); err == nil && s.Ordered() {
			k.lane = laneOrdered
		}
	}
	return k
}

// Recovery.

// untilCursor is a delivery id that sorts after every delivery of the
// subscription created up to until: the first page's cursor.
func untilCursor(until time.Time, sub string) string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(until))
	var entropy [10]byte
	for i := range entropy {
		entropy[i] = 0xff
	}
	_ = u.SetEntropy(entropy[:])
	return deliveryPrefix + u.String() + strings.TrimPrefix(sub, subPrefix)
}

func (w *Jobs) countRecover(ctx context.Context, j jobs.Job) (int64, error) {
	var n int64
	before := untilCursor(j.Until, j.SubscriptionID)
	for {
		list, more, err := w.d.index.List(ctx, j.TenantID, j.SubscriptionID, j.DeliveryStatus, before, deliverylog.MaxListLimit)
		if err != nil {
			return 0, fmt.Errorf("job %s: count deliveries: %w", j.ID, err)
		}
		for _, dl := range list {
			if dl.CreatedAt.Before(j.Since) {
				return n, nil
			}
			if !dl.CreatedAt.After(j.Until) {
				n++
			}
		}
		if !more || len(list) == 0 {
			return n, nil
		}
		before = list[len(list)-1].ID
	}
}

func (w *Jobs) planRecover(ctx context.Context, j jobs.Job, max int) (jobs.Batch, error) {
	sub, err := w.subscription(ctx, j)
	if err != nil {
		return jobs.Batch{}, err
	}
	if !sub.Active {
		return jobs.Batch{}, jobs.Permanent(errors.New("the subscription was disabled; enable it and recover again"))
	}
	before := j.Cursor
	if before == "" {
		before = untilCursor(j.Until, j.SubscriptionID)
	}
	list, more, err := w.d.index.List(ctx, j.TenantID, j.SubscriptionID, j.DeliveryStatus, before, max)
	if err != nil {
		return jobs.Batch{}, fmt.Errorf("job %s: list deliveries: %w", j.ID, err)
	}
	b := jobs.Batch{Next: before, Done: !more}
	var items []recoverItem
	for _, dl := range list {
		if dl.CreatedAt.Before(j.Since) {
			b.Done = true
			break
		}
		b.Next = dl.ID
		if dl.CreatedAt.After(j.Until) {
			continue
		}
		items = append(items, recoverItem{Delivery: dl.ID, Event: dl.EventID, Type: dl.EventType, Seq: dl.EventSeq,
			Created: dl.CreatedAt.UnixNano(), Attempt: attemptsMade(dl) + 1})
	}
	b.Items, _ = json.Marshal(items)
	b.Count = len(items)
	return b, nil
}

// attemptsMade is how many attempts a delivery's log shows made.
func attemptsMade(dl deliverylog.Delivery) int {
	made := len(dl.Attempts)
	if made > 0 {
		made = max(made, dl.Attempts[made-1].N)
	}
	return made
}

func (w *Jobs) sendRecover(ctx context.Context, j jobs.Job, sub *subscriptions.Subscription, b jobs.Batch) error {
	var items []recoverItem
	if err := json.Unmarshal(b.Items, &items); err != nil {
		return jobs.Permanent(fmt.Errorf("decode the batch of job %s: %w", j.ID, err))
	}
	now := w.d.cfg.Now().UTC()
	var recs []deliverylog.Record
	var msgs []*nats.Msg
	for _, it := range items {
		if got, err := w.d.index.Delivery(ctx, j.TenantID, it.Delivery); err == nil && attemptsMade(got) >= it.Attempt {
			continue // sent by an earlier run of this batch
		}
		dl := &delivery{id: it.Delivery, tenant: j.TenantID, sub: sub.ID, attempt: it.Attempt,
			created: time.Unix(0, it.Created).UTC(), manual: true,
			ev: &event{tenant: j.TenantID, id: it.Event, typ: it.Type, seq: it.Seq}}
		rec := dl.record(deliverylog.StatusPending)
		rec.NextAttemptAt = &now
		recs = append(recs, rec)
		msgs = append(msgs, parkMsg(dl, laneUnordered))
	}
	if len(msgs) == 0 {
		return nil
	}
	// The log first, as for a manual retry: the deliveries show pending
	// from now on, and leave the status the job reads.
	if err := w.appendAll(ctx, recs); err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	if err := w.d.publishParked(ctx, msgs); err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	w.d.parkers.want(parkKey{tenant: j.TenantID, sub: sub.ID, lane: laneUnordered}, now)
	return nil
}

// appendAll appends recs to the attempt log and waits until all are stored.
func (w *Jobs) appendAll(ctx context.Context, recs []deliverylog.Record) error {
	return w.d.wait(ctx, func(done func(error)) {
		all := join(len(recs), done)
		for _, r := range recs {
			if err := w.d.log.Append(ctx, r, all); err != nil {
				all(err)
			}
		}
	})
}

// Replay.

// replayConsumer reads the tenant's events from the stored position after
// cursor (a stream sequence), or from since.
func (w *Jobs) replayConsumer(ctx context.Context, j jobs.Job, headersOnly bool) (jetstream.Consumer, error) {
	cfg := jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectPrefix + j.TenantID + ".>"},
		HeadersOnly:    headersOnly,
	}
	if seq, err := strconv.ParseUint(j.Cursor, 10, 64); err == nil && seq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
	} else {
		since := j.Since
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := w.d.js.OrderedConsumer(ctx, events.StreamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("job %s: read events: %w", j.ID, err)
	}
	return cons, nil
}

// scanReplay reads the job's events in stream order, calling visit with
// each one stored up to Until, until visit returns false or the range
// ends; it reports whether the range ended.
func (w *Jobs) scanReplay(ctx context.Context, j jobs.Job, headersOnly bool, visit func(m jetstream.Msg, md *jetstream.MsgMetadata) bool) (bool, error) {
	cons, err := w.replayConsumer(ctx, j, headersOnly)
	if err != nil {
		return false, err
	}
	for {
		batch, err := cons.FetchNoWait(fetchBatch)
		if err != nil {
			return false, fmt.Errorf("job %s: read events: %w", j.ID, err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return false, fmt.Errorf("job %s: event metadata: %w", j.ID, err)
			}
			if md.Timestamp.After(j.Until) {
				return true, nil
			}
			if !visit(m, md) {
				return md.NumPending == 0, nil
			}
			if md.NumPending == 0 {
				return true, nil
			}
		}
		if err := batch.Error(); err != nil {
			return false, fmt.Errorf("job %s: read events: %w", j.ID, err)
		}
		if got == 0 {
			return true, nil
		}
	}
}

func (w *Jobs) countReplay(ctx context.Context, j jobs.Job) (int64, error) {
	sub, err := w.subscription(ctx, j)
	if err != nil {
		return 0, err
	}
	j.Cursor = ""
	var n int64
	_, err = w.scanReplay(ctx, j, true, func(m jetstream.Msg, _ *jetstream.MsgMetadata) bool {
		if _, typ, err := events.ParseSubject(m.Subject()); err == nil && sub.Wants(typ) {
			n++
		}
		return true
	})
	return n, err
}

func (w *Jobs) planReplay(ctx context.Context, j jobs.Job, max int) (jobs.Batch, error) {
	sub, err := w.subscription(ctx, j)
	if err != nil {
		return jobs.Batch{}, err
	}
	b := jobs.Batch{Next: j.Cursor}
	var items []replayItem
	scanned := 0
	b.Done, err = w.scanReplay(ctx, j, !sub.HasFilter(), func(m jetstream.Msg, md *jetstream.MsgMetadata) bool {
		scanned++
		b.Next = strconv.FormatUint(md.Sequence.Stream, 10)
		_, typ, perr := events.ParseSubject(m.Subject())
		if perr == nil && sub.Wants(typ) {
			if w.d.store.Accepts(sub, subscriptions.NewFilterEvent(m.Data())) {
				items = append(items, replayItem{Seq: md.Sequence.Stream, Event: m.Headers().Get(events.HeaderEventID), Type: typ})
			} else {
				b.Filtered++
			}
		}
		return len(items) < max && scanned < max*replayScanFactor
	})
	if err != nil {
		return jobs.Batch{}, err
	}
	b.Items, _ = json.Marshal(items)
	b.Count = len(items)
	return b, nil
}

// replayDeliveryID is the id of the delivery a replay job makes of the
// event at seq: a ULID of the batch's planning time and of seq, with two
// bytes of the job's id (their top bit set, which no fan-out id has), and
// the subscription's ULID. The same job and batch always give the same id.
func replayDeliveryID(job string, at time.Time, seq uint64, sub string) string {
	var u ulid.ULID
	_ = u.SetTime(ulid.Timestamp(at))
	var entropy [10]byte
	binary.BigEndian.PutUint64(entropy[:8], seq)
	h := fnv.New32a()
	h.Write([]byte(job))
	sum := h.Sum32()
	entropy[8], entropy[9] = byte(sum>>8)|0x80, byte(sum)
	_ = u.SetEntropy(entropy[:])
	return deliveryPrefix + u.String() + strings.TrimPrefix(sub, subPrefix)
}

func (w *Jobs) sendReplay(ctx context.Context, j jobs.Job, sub *subscriptions.Subscription, b jobs.Batch) error {
	var items []replayItem
	if err := json.Unmarshal(b.Items, &items); err != nil {
		return jobs.Permanent(fmt.Errorf("decode the batch of job %s: %w", j.ID, err))
	}
	lane := byte(laneUnordered)
	if sub.Ordered() {
		lane = laneOrdered
	}
	created := b.PlannedAt.UTC()
	var msgs []*nats.Msg
	for _, it := range items {
		id := replayDeliveryID(j.ID, created, it.Seq, sub.ID)
		if _, err := w.d.index.Delivery(ctx, j.TenantID, id); err == nil {
			continue // attempted after an earlier run of this batch
		}
		dl := &delivery{id: id, tenant: j.TenantID, sub: sub.ID, attempt: 1, created: created,
			ev: &event{tenant: j.TenantID, id: it.Event, typ: it.Type, seq: it.Seq}}
		msgs = append(msgs, parkMsg(dl, lane))
	}
	if len(msgs) == 0 {
		return nil
	}
	if err := w.d.publishParked(ctx, msgs); err != nil {
		return fmt.Errorf("job %s: %w", j.ID, err)
	}
	w.d.parkers.want(parkKey{tenant: j.TenantID, sub: sub.ID, lane: lane}, w.d.cfg.Now())
	return nil
}
