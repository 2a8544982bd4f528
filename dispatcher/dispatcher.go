package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/subscriptions"
)

// Durable consumer names, shared by every replica.
const (
	fanoutConsumer  = "fanout"
	deliverConsumer = "deliver"
)

// ackTimeout bounds the wait for a batch of JetStream acknowledgements.
const ackTimeout = 30 * time.Second

// Redelivery bounds: how long a message handed to a replica that died
// waits before another replica (or the restarted one) gets it. Fan-out
// takes milliseconds; an attempt takes at most the timeout.
const (
	fanoutAckWait = 10 * time.Second
	attemptSlack  = 5 * time.Second
)

// Dispatcher runs the fan-out and delivery stages. Start it once; Stop it
// to drain.
type Dispatcher struct {
	cfg    Config
	js     jetstream.JetStream
	store  *subscriptions.Store
	client *http.Client
	logger *slog.Logger
	m      *metrics

	fanoutCons, deliverCons jetstream.Consumer
	// attempts and events are the streams the read side reads.
	attempts, eventStream jetstream.Stream
	fanoutCC, deliverCC   jetstream.ConsumeContext

	queue  *fairQueue
	settle chan settlement
	// runCtx bounds in-flight attempts; cancelled only when a drain runs
	// out of time.
	runCtx    context.Context
	runCancel context.CancelFunc
	workers   sync.WaitGroup
	settler   sync.WaitGroup
	keeper    sync.WaitGroup
	stopOnce  sync.Once
	// stopping ends the background loops when a drain begins.
	stopping chan struct{}
	ordered  orderedConsumers
}

// settlement is a message to acknowledge once its publications are stored.
type settlement struct {
	msg     jetstream.Msg
	futures []jetstream.PubAckFuture
	// retryIn, when set, hands the message back for redelivery after it
	// instead of acking it.
	retryIn time.Duration
}

// New prepares the dispatcher: it creates its streams and consumers.
func New(ctx context.Context, js jetstream.JetStream, store *subscriptions.Store, cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	cfg = cfg.withDefaults()
	if err := ensureStreams(ctx, js, cfg); err != nil {
		return nil, err
	}
	attempts, err := js.Stream(ctx, AttemptsStream)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", AttemptsStream, err)
	}
	eventStream, err := js.Stream(ctx, events.StreamName)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", events.StreamName, err)
	}
	d := &Dispatcher{
		cfg: cfg, js: js, store: store, logger: logger,
		client:      NewClient(cfg.Egress),
		m:           newMetrics(reg),
		queue:       newFairQueue(cfg.PerSubscription, cfg.QueuePerSubscription, cfg.QueueWait),
		settle:      make(chan settlement, 8192),
		attempts:    attempts,
		stopping:    make(chan struct{}),
		ordered:     orderedConsumers{running: make(map[string]jetstream.ConsumeContext)},
		eventStream: eventStream,
	}
	d.fanoutCons, err = js.CreateOrUpdateConsumer(ctx, events.StreamName, jetstream.ConsumerConfig{
		Durable:       fanoutConsumer,
		Description:   "Matches events against subscriptions and stores delivery tasks",
		FilterSubject: events.SubjectAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       fanoutAckWait,
		MaxAckPending: cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", fanoutConsumer, err)
	}
	d.deliverCons, err = js.CreateOrUpdateConsumer(ctx, DeliveriesStream, jetstream.ConsumerConfig{
		Durable:       deliverConsumer,
		Description:   "Sends delivery tasks to endpoints",
		FilterSubject: taskSubjectPrefix + ">",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.Timeout + attemptSlack,
		MaxAckPending: cfg.MaxAckPending,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", deliverConsumer, err)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "webhooks_consumer_pending", Help: "Messages not yet delivered to the consumers, events and delivery tasks together (consumer lag).",
	}, d.lag))
	return d, nil
}

// Streams names the streams the dispatcher uses besides the events stream.
func (d *Dispatcher) Streams() []string { return []string{DeliveriesStream, AttemptsStream} }

// lag reads both consumers' pending counts; it runs on a metrics scrape.
func (d *Dispatcher) lag() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n uint64
	for _, c := range []jetstream.Consumer{d.fanoutCons, d.deliverCons} {
		if info, err := c.Info(ctx); err == nil {
			n += info.NumPending + uint64(info.NumAckPending)
		}
	}
	return float64(n)
}

// Start begins consuming. It returns at once.
func (d *Dispatcher) Start() error {
	d.runCtx, d.runCancel = context.WithCancel(context.Background())
	d.settler.Add(1)
	go d.runSettler()
	for range d.cfg.Workers {
		d.workers.Add(1)
		go d.runWorker()
	}
	d.keeper.Add(2)
	go d.keepQueuedAlive()
	go d.runOrdered()
	onErr := jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) && !errors.Is(err, nats.ErrConnectionClosed) {
			d.logger.Warn("consume", "err", err)
		}
	})
	var err error
	d.fanoutCC, err = d.fanoutCons.Consume(d.fanout, jetstream.PullMaxMessages(1024), onErr)
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	d.deliverCC, err = d.deliverCons.Consume(d.receive, jetstream.PullMaxMessages(1024), onErr)
	if err != nil {
		d.fanoutCC.Stop()
		return fmt.Errorf("consume delivery tasks: %w", err)
	}
	return nil
}

// Stop stops taking work, lets attempts in flight finish until ctx ends,
// hands queued tasks back to the stream and waits for every goroutine.
func (d *Dispatcher) Stop(ctx context.Context) {
	d.stopOnce.Do(func() {
		close(d.stopping)
		if d.fanoutCC != nil {
			d.fanoutCC.Drain()
			<-d.fanoutCC.Closed()
		}
		if d.deliverCC != nil {
			d.deliverCC.Drain()
			<-d.deliverCC.Closed()
		}
		d.stopOrdered() // after the reconcile loop can no longer start one
		for _, t := range d.queue.close() {
			_ = t.msg.Nak() // hand back for another replica, or for the restart
		}
		done := make(chan struct{})
		go func() { d.workers.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			d.runCancel() // abort attempts in flight; their tasks are redelivered
			<-done
		}
		close(d.settle)
		d.settler.Wait()
		d.runCancel()
		d.keeper.Wait()
	})
}

// runSettler acknowledges messages in order once their publications are
// stored; a failed publication hands the message back for a retry.
func (d *Dispatcher) runSettler() {
	defer d.settler.Done()
	for s := range d.settle {
		if err := events.AwaitAll(context.Background(), ackTimeout, s.futures); err != nil {
			d.logger.Warn("store publications; message handed back", "subject", s.msg.Subject(), "err", err)
			_ = s.msg.NakWithDelay(time.Second)
			continue
		}
		if s.retryIn > 0 {
			_ = s.msg.NakWithDelay(s.retryIn)
			continue
		}
		_ = s.msg.Ack()
	}
}

// fanout stores one delivery task per matching active subscription of an
// event (and one skipped record per disabled one); the event is acked only
// once all of them are stored.
func (d *Dispatcher) fanout(m jetstream.Msg) {
	tenant, typ, err := events.ParseSubject(m.Subject())
	if err != nil {
		d.logger.Error("fan-out: drop message on a malformed subject", "subject", m.Subject())
		_ = m.Term()
		return
	}
	eventID := m.Headers().Get(events.HeaderEventID)
	if eventID == "" {
		e, err := events.Parse(m.Data())
		if err != nil || !events.ValidID(e.ID) {
			d.logger.Error("fan-out: drop an event without a valid id", "subject", m.Subject())
			_ = m.Term()
			return
		}
		eventID = e.ID
	}
	d.m.events.Inc()
	subs := d.store.Index().Match(nil, tenant, typ)
	if len(subs) == 0 {
		_ = m.Ack()
		return
	}
	now := d.cfg.Now().UTC()
	var seq uint64
	if md, err := m.Metadata(); err == nil {
		seq = md.Sequence.Stream
	}
	msgs := make([]*nats.Msg, 0, len(subs))
	for _, s := range subs {
		if !s.Active {
			// Kept as skipped, so a replay after re-enabling can send it.
			skipped := Delivery{ID: NewDeliveryID(s.ID), EventID: eventID, EventType: typ, SubscriptionID: s.ID,
				TenantID: tenant, Status: StatusSkipped, CreatedAt: now, EventSeq: seq}
			msgs = append(msgs, skipped.msg())
			continue
		}
		t := task{tenant: tenant, sub: s.ID, delivery: NewDeliveryID(s.ID), eventID: eventID, eventType: typ,
			eventSeq: seq, attempt: 1, created: now, ordered: s.Ordered()}
		msgs = append(msgs, newTaskMsg(&t, eventID+":"+s.ID, m.Data()))
	}
	futures, err := events.PublishAsync(d.runCtx, d.js, msgs)
	if err != nil {
		d.logger.Warn("fan-out: store tasks; event handed back", "event", eventID, "err", err)
		_ = m.NakWithDelay(time.Second)
		return
	}
	d.m.tasks.Add(float64(len(msgs)))
	d.settle <- settlement{msg: m, futures: futures}
}

// receive queues a delivery task for the workers; a subscription with no
// room in memory has the task deferred.
func (d *Dispatcher) receive(m jetstream.Msg) {
	t, err := parseTask(m)
	if err != nil {
		d.logger.Error("deliver: drop a malformed task", "err", err)
		_ = m.Term()
		return
	}
	var pace float64
	if s, ok := d.store.Index().Subscription(t.tenant, t.sub); ok {
		pace = s.RateLimit
	}
	if !d.queue.push(t, pace) {
		d.deferTask(&t)
	}
}

// deferTask hands a task back through JetStream for a second, without
// using an attempt, so it waits in the stream rather than in this
// replica's memory and the consumer's pending set.
func (d *Dispatcher) deferTask(t *task) {
	// A task may be deferred many times: the key names this stored message,
	// so each deferral is stored, and a redelivery of this one is not.
	// Without its sequence there is no safe key: hand the task back.
	md, err := t.msg.Metadata()
	if err != nil {
		_ = t.msg.NakWithDelay(time.Second)
		return
	}
	d.m.deferred.Inc()
	at := d.cfg.Now().Add(time.Second)
	key := "d" + strconv.FormatUint(md.Sequence.Stream, 10)
	futures, err := events.PublishAsync(d.runCtx, d.js, []*nats.Msg{retryMsg(t, at, key, t.msg.Data())})
	if err != nil {
		_ = t.msg.NakWithDelay(time.Second)
		return
	}
	d.settle <- settlement{msg: t.msg, futures: futures}
}

// keepQueuedAlive tells JetStream, a third of AckWait apart, that tasks
// waiting in memory for their subscription's turn are still being worked
// on, so a short AckWait (fast recovery after a crash) does not redeliver
// them while they wait.
func (d *Dispatcher) keepQueuedAlive() {
	defer d.keeper.Done()
	t := time.NewTicker((d.cfg.Timeout + attemptSlack) / 3)
	defer t.Stop()
	for {
		select {
		case <-d.runCtx.Done():
			return
		case <-t.C:
			for _, m := range d.queue.waitingMsgs() {
				_ = m.InProgress()
			}
		}
	}
}

func (d *Dispatcher) runWorker() {
	defer d.workers.Done()
	for {
		t, ok := d.queue.next()
		if !ok {
			return
		}
		start := time.Now()
		d.attempt(&t)
		for _, late := range d.queue.done(t, time.Since(start)) {
			d.deferTask(&late)
		}
	}
}

// SendTest delivers a webhook.test event to one subscription only,
// whatever its event types, and returns the event id. The event is stored
// like any other (fan-out matches webhook.test to nothing), so its delivery
// can be retried by hand.
func (d *Dispatcher) SendTest(ctx context.Context, sub subscriptions.Subscription) (string, error) {
	now := d.cfg.Now().UTC()
	data, _ := json.Marshal(map[string]string{"subscriptionId": sub.ID, "message": "This is a test webhook from One Stack."})
	e := events.Event{ID: events.NewID(), Type: events.TypeWebhookTest, TenantID: sub.TenantID, OccurredAt: now, Data: data}
	ack, err := d.js.PublishMsg(ctx, e.Msg(true))
	if err != nil {
		return "", fmt.Errorf("store test event: %w: %w", events.ErrPublish, err)
	}
	t := task{tenant: sub.TenantID, sub: sub.ID, delivery: NewDeliveryID(sub.ID), eventID: e.ID, eventType: e.Type,
		eventSeq: ack.Sequence, attempt: 1, created: now}
	if err := events.PublishAll(ctx, d.js, ackTimeout, []*nats.Msg{newTaskMsg(&t, e.ID+":"+sub.ID, e.Marshal())}); err != nil {
		return "", fmt.Errorf("send test event: %w", err)
	}
	return e.ID, nil
}
