package dispatcher

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/subscriptions"
)

// reconcileEvery is how often a replica matches its FIFO consumers to the
// FIFO subscriptions of the index.
const reconcileEvery = 250 * time.Millisecond

// orderedConsumers reads each FIFO subscription's tasks through a durable
// consumer of its own with MaxAckPending 1, shared by every replica: one
// delivery of the subscription is outstanding at a time, anywhere, and a
// failed one is handed back with the schedule's delay, so the next waits
// for it. That pending message is the subscription's own; the shared
// delivery consumer is untouched.
type orderedConsumers struct {
	mu      sync.Mutex
	running map[string]jetstream.ConsumeContext // by "<tenant>.<sub>"
}

func orderedName(sub string) string { return "ordered_" + sub }

// runOrdered reconciles until the dispatcher stops.
func (d *Dispatcher) runOrdered() {
	defer d.keeper.Done()
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		d.reconcileOrdered(d.runCtx)
		select {
		case <-d.runCtx.Done():
			return
		case <-d.stopping:
			return
		case <-t.C:
		}
	}
}

// reconcileOrdered starts a consumer for every FIFO subscription and
// retires the others: once a subscription is no longer FIFO its consumer
// keeps going until its subject is empty; once deleted, its consumer and
// its remaining tasks go at once.
func (d *Dispatcher) reconcileOrdered(ctx context.Context) {
	want := map[string]*subscriptions.Subscription{}
	for _, s := range d.store.Index().Ordered() {
		want[s.TenantID+"."+s.ID] = s
	}
	d.ordered.mu.Lock()
	defer d.ordered.mu.Unlock()
	select {
	case <-d.stopping:
		return // stopOrdered ran or is waiting: start nothing new
	default:
	}
	for key, s := range want {
		if _, ok := d.ordered.running[key]; ok {
			continue
		}
		cons, err := d.js.CreateOrUpdateConsumer(ctx, DeliveriesStream, jetstream.ConsumerConfig{
			Durable:       orderedName(s.ID),
			Description:   "FIFO deliveries of one subscription",
			FilterSubject: taskSubject(s.TenantID, s.ID, true),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       d.cfg.Timeout + attemptSlack,
			MaxAckPending: 1,
			MaxDeliver:    -1,
		})
		if err != nil {
			d.logger.Warn("ordered: create consumer", "subscription", s.ID, "err", err)
			continue
		}
		cc, err := cons.Consume(d.receiveOrdered, jetstream.PullMaxMessages(1))
		if err != nil {
			d.logger.Warn("ordered: consume", "subscription", s.ID, "err", err)
			continue
		}
		d.ordered.running[key] = cc
	}
	for key, cc := range d.ordered.running {
		if _, ok := want[key]; ok {
			continue
		}
		tenant, sub, _ := strings.Cut(key, ".")
		if _, exists := d.store.Index().Subscription(tenant, sub); exists && !d.drained(ctx, sub) {
			continue // no longer FIFO: finish what is queued in order first
		}
		cc.Stop()
		delete(d.ordered.running, key)
		if err := d.js.DeleteConsumer(ctx, DeliveriesStream, orderedName(sub)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			d.logger.Warn("ordered: delete consumer", "subscription", sub, "err", err)
		}
		if _, exists := d.store.Index().Subscription(tenant, sub); !exists {
			stream, err := d.js.Stream(ctx, DeliveriesStream)
			if err == nil {
				err = stream.Purge(ctx, jetstream.WithPurgeSubject(taskSubject(tenant, sub, true)))
			}
			if err != nil {
				d.logger.Warn("ordered: drop a deleted subscription's tasks", "subscription", sub, "err", err)
			}
		}
	}
}

// drained reports whether a FIFO consumer has nothing left to deliver.
func (d *Dispatcher) drained(ctx context.Context, sub string) bool {
	c, err := d.js.Consumer(ctx, DeliveriesStream, orderedName(sub))
	if err != nil {
		return errors.Is(err, jetstream.ErrConsumerNotFound)
	}
	info, err := c.Info(ctx)
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// receiveOrdered makes one attempt of a FIFO subscription's head task, on
// that consumer's own goroutine. A head handed back after a failure, or
// after a crash, reads its history from its delivery snapshot; one that had
// in fact finished is acknowledged without another attempt.
func (d *Dispatcher) receiveOrdered(m jetstream.Msg) {
	t, err := parseTask(m)
	if err != nil {
		d.logger.Error("ordered: drop a malformed task", "err", err)
		_ = m.Term()
		return
	}
	if md, err := m.Metadata(); err == nil && md.NumDelivered > 1 {
		dlv, err := d.Delivery(d.runCtx, t.tenant, t.delivery)
		switch {
		case err == nil && (dlv.Status == StatusSucceeded || dlv.Status == StatusFailed):
			_ = m.Ack()
			return
		case err == nil:
			t.history, t.attempt = dlv.Attempts, len(dlv.Attempts)+1
		case !errors.Is(err, ErrNotFound):
			_ = m.NakWithDelay(time.Second)
			return
		}
	}
	d.attempt(&t)
}

// stopOrdered stops every FIFO consumer of this replica.
func (d *Dispatcher) stopOrdered() {
	d.ordered.mu.Lock()
	defer d.ordered.mu.Unlock()
	for key, cc := range d.ordered.running {
		cc.Drain()
		<-cc.Closed()
		delete(d.ordered.running, key)
	}
}
