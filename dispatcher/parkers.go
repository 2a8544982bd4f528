package dispatcher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/onestack/webhooks/subscriptions"
)

// Parker timing.
const (
	// scanEvery is how often a replica lists which lanes hold parked
	// records (one stream-info call), to read lanes it did not park itself:
	// retries come due, records parked by a replica that died.
	scanEvery = time.Second
	// parkerIdle is how long a lane's consumer keeps running with nothing
	// to read before it stops; the scan restarts it when records arrive.
	parkerIdle = 30 * time.Second
	// parkerInactive lets the server delete a lane's durable consumer once
	// no replica has read it for this long.
	parkerInactive = 10 * time.Minute
	// closeWait bounds the wait for a stopped consumer to close, should
	// the connection be gone.
	closeWait = 5 * time.Second
	// ownerGroup is the priority group of lane consumers: the server pins
	// one replica, which alone receives the lane's records; pinnedTTL after
	// that replica stops pulling (it died), it pins another. parkPull is
	// how long one pull request waits, well within pinnedTTL, so a live
	// owner keeps its pin.
	ownerGroup = "owner"
	pinnedTTL  = 10 * time.Second
	parkPull   = 3 * time.Second
)

// parkers runs, on demand, the durable consumers that read parked records:
// one per lane of a subscription that has some, at that subscription's
// pace. The unordered lane's consumer lets window records out at once, so
// a slow endpoint holds at most its window in this replica's memory while
// the rest wait in the stream, each stored once; the FIFO lane's lets out
// one at a time, anywhere.
//
// Every replica reads every lane, but a lane's consumer is pinned to one
// replica at a time (JetStream's pinned-client priority policy): its owner
// alone gets the lane's records, so a subscription's pace and its FIFO
// order hold across replicas. A replica that stops hands its pins back at
// once; one that dies loses them pinnedTTL later, and another takes over.
type parkers struct {
	d *Dispatcher

	mu      sync.Mutex
	running map[parkKey]*parker
	// starts asks the manager loop to start a lane's consumer.
	starts chan parkKey
}

type parker struct {
	cc jetstream.ConsumeContext
	// done: a FIFO lane whose subscription is no longer FIFO has read past
	// the switch, and may go.
	done bool
	// busyUntil is when the lane was last known to have work, or will have
	// (a scheduled retry): it is not stopped before parkerIdle after that.
	busyUntil time.Time
}

func newParkers(d *Dispatcher) *parkers {
	return &parkers{d: d, running: make(map[parkKey]*parker), starts: make(chan parkKey, 4096)}
}

// want says lane k has work from now until until (a retry's due time): its
// consumer is started if it does not run. It never blocks.
func (p *parkers) want(k parkKey, until time.Time) {
	p.mu.Lock()
	if pk, ok := p.running[k]; ok {
		pk.busyUntil = later(pk.busyUntil, until)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	select {
	case p.starts <- k:
	default: // the scan will find the lane
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// run starts wanted lanes, scans for lanes with parked records and stops
// idle ones, until ctx ends; then it stops every consumer.
func (p *parkers) run(ctx context.Context) {
	defer p.stopAll()
	t := time.NewTicker(scanEvery)
	defer t.Stop()
	p.scan(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case k := <-p.starts:
			p.start(ctx, k, p.d.cfg.Now())
		case <-t.C:
			p.scan(ctx)
			p.retire(ctx)
		}
	}
}

// scan starts the consumer of every lane that holds parked records.
func (p *parkers) scan(ctx context.Context) {
	info, err := p.d.deliveries.Info(ctx, jetstream.WithSubjectFilter(parkPrefix+">"))
	if err != nil {
		if ctx.Err() == nil {
			p.d.logger.Warn("parked deliveries: list lanes", "err", err)
		}
		return
	}
	now := p.d.cfg.Now()
	for subj := range info.State.Subjects {
		if k, ok := parseParkSubject(subj); ok {
			p.start(ctx, k, now)
		}
	}
	for _, s := range p.d.store.Index().Ordered() {
		p.start(ctx, parkKey{tenant: s.TenantID, sub: s.ID, lane: laneFIFO}, now)
	}
}

// start runs lane k's consumer, unless it runs or its subscription is
// gone (whose records are then dropped).
func (p *parkers) start(ctx context.Context, k parkKey, now time.Time) {
	p.mu.Lock()
	if pk, ok := p.running[k]; ok {
		pk.busyUntil = later(pk.busyUntil, now)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	sub, found := p.d.lookup(ctx, k.tenant, k.sub)
	if !found {
		p.drop(ctx, k)
		return
	}
	window, receive := p.d.window(sub), p.d.receiveParked
	switch k.lane {
	case laneOrdered:
		window = 1
	case laneFIFO:
		if !sub.Ordered() {
			return
		}
		window, receive = 1, p.d.receiveFIFO
	}
	cons, err := p.consumer(ctx, k, sub, window)
	if err != nil {
		if ctx.Err() == nil {
			p.d.logger.Warn("parked deliveries: create consumer", "subscription", k.sub, "err", err)
		}
		return
	}
	cc, err := cons.Consume(receive, jetstream.PullMaxMessages(window), jetstream.PullExpiry(parkPull),
		jetstream.PullPriorityGroup(ownerGroup), jetstream.ConsumeErrHandler(p.d.consumeError))
	if err != nil {
		p.d.logger.Warn("parked deliveries: consume", "subscription", k.sub, "err", err)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.running[k]; ok { // started meanwhile: keep one
		cc.Stop()
		return
	}
	p.running[k] = &parker{cc: cc, busyUntil: now}
}

// consumer makes (or finds) lane k's durable consumer. A FIFO lane's
// starts at the moment its subscription last changed (when it became FIFO,
// at the latest): an existing one keeps its position, and it is never left
// to expire, since its position is the subscription's place in its order.
func (p *parkers) consumer(ctx context.Context, k parkKey, sub *subscriptions.Subscription, window int) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:           k.consumer(),
		Description:       "Parked deliveries of one subscription",
		FilterSubject:     k.subject(),
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           p.d.ackWait(),
		MaxAckPending:     window,
		MaxDeliver:        -1,
		InactiveThreshold: parkerInactive,
		PriorityPolicy:    jetstream.PriorityPolicyPinned,
		PriorityGroups:    []string{ownerGroup},
		PinnedTTL:         pinnedTTL,
	}
	if k.lane == laneFIFO {
		if c, err := p.d.js.Consumer(ctx, k.stream(), k.consumer()); err == nil {
			return c, nil
		}
		start := sub.UpdatedAt
		cfg.Description = "The FIFO order of one subscription"
		cfg.InactiveThreshold = 0
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	return jsretry.Provision(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return p.d.js.CreateOrUpdateConsumer(ctx, k.stream(), cfg)
	})
}

// retire stops the consumers of lanes idle for parkerIdle and of deleted
// subscriptions.
func (p *parkers) retire(ctx context.Context) {
	now := p.d.cfg.Now()
	p.mu.Lock()
	var idle []parkKey
	for k, pk := range p.running {
		_, ok := p.d.store.Index().Subscription(k.tenant, k.sub)
		switch {
		case k.lane == laneFIFO:
			// Runs while its subscription is FIFO; after, until it has
			// read past the switch (receiveFIFO says so).
			if !ok || pk.done {
				idle = append(idle, k)
			}
		case !ok || now.Sub(pk.busyUntil) > parkerIdle:
			idle = append(idle, k)
		}
	}
	p.mu.Unlock()
	for _, k := range idle {
		if _, found := p.d.lookup(ctx, k.tenant, k.sub); !found {
			p.stop(k)
			p.drop(ctx, k)
			continue
		}
		if k.lane == laneFIFO {
			p.stop(k)
			p.drop(ctx, k)
			continue
		}
		c, err := p.d.js.Consumer(ctx, DeliveriesStream, k.consumer())
		if err != nil {
			if errors.Is(err, jetstream.ErrConsumerNotFound) {
				p.stop(k)
			}
			continue
		}
		info, err := c.Info(ctx)
		if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
			p.mu.Lock()
			if pk, ok := p.running[k]; ok && err == nil {
				pk.busyUntil = now
			}
			p.mu.Unlock()
			continue
		}
		p.stop(k)
	}
}

// drop removes what is parked for a deleted subscription: its lane's
// records and consumer (a FIFO lane's consumer only: its records are the
// events).
func (p *parkers) drop(ctx context.Context, k parkKey) {
	if k.lane != laneFIFO {
		if err := p.d.deliveries.Purge(ctx, jetstream.WithPurgeSubject(k.subject())); err != nil && ctx.Err() == nil {
			p.d.logger.Warn("parked deliveries: drop a deleted subscription's", "subscription", k.sub, "err", err)
		}
	}
	if err := p.d.js.DeleteConsumer(ctx, k.stream(), k.consumer()); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && ctx.Err() == nil {
		p.d.logger.Warn("parked deliveries: delete a deleted subscription's consumer", "subscription", k.sub, "err", err)
	}
}

// passed marks a FIFO lane as read past its subscription's switch away
// from FIFO.
func (p *parkers) passed(k parkKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pk, ok := p.running[k]; ok {
		pk.done = true
	}
}

func (p *parkers) stop(k parkKey) {
	p.mu.Lock()
	pk, ok := p.running[k]
	delete(p.running, k)
	p.mu.Unlock()
	if ok {
		pk.cc.Stop()
	}
}

// stopAll stops every consumer and hands back the lanes this replica owns,
// so another replica takes them at once; records delivered here and not
// yet acknowledged are handed back by the caller or redelivered after
// their ack wait.
func (p *parkers) stopAll() {
	p.mu.Lock()
	running := p.running
	p.running = make(map[parkKey]*parker)
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	for k, pk := range running {
		pk.cc.Stop()
		select {
		case <-pk.cc.Closed():
		case <-ctx.Done():
		}
		// Unpinning a lane another replica owns changes nothing there
		// but a moment's pause; errors only mean it had no pin.
		if k.lane != laneFIFO {
			_ = p.d.deliveries.UnpinConsumer(ctx, k.consumer(), ownerGroup)
		} else {
			_ = p.d.events.UnpinConsumer(ctx, k.consumer(), ownerGroup)
		}
	}
}
