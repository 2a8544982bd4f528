package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/onestack/webhooks/deliverylog"
	"github.com/onestack/webhooks/destination"
	"github.com/onestack/webhooks/endpointauth"
	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/internal/jsretry"
	"github.com/onestack/webhooks/subscriptions"
)

// fanoutConsumer is the durable consumer of events, shared by every replica.
const fanoutConsumer = "fanout"

// Ack waits: how long a message handed to a replica that died waits before
// another replica (or the restarted one) gets it. Messages that wait in
// memory longer are kept alive by the keeper. It is also how long events
// in transit to a pull that died with its NATS node (a consumer leader
// killed) wait to be sent again: 10 s, not 30 s, which stopped deliveries
// for 28 to 29 s after the events leader was lost in 5 of about 35
// cluster test runs.
const (
	eventAckWait = 10 * time.Second
	attemptSlack = 5 * time.Second
)

// Dispatcher runs the fan-out and the deliveries. Start it once; Stop it to
// drain.
type Dispatcher struct {
	cfg    Config
	js     jetstream.JetStream
	store  *subscriptions.Store
	log    *deliverylog.Writer
	index  *deliverylog.Index
	client *http.Client
	// auth prepares deliveries to endpoints that authenticate (oauth2
	// tokens, mtls transports).
	auth   *endpointauth.Authenticator
	logger *slog.Logger
	m      *metrics

	events, deliveries jetstream.Stream
	// fanoutMu guards the fan-out consumer, made again when lost.
	fanoutMu   sync.Mutex
	fanoutCons jetstream.Consumer
	fanoutIter jetstream.MessagesContext
	// lastRead is the highest event sequence the fan-out made deliveries
	// of: one read again at or below it was fanned out here before.
	lastRead atomic.Uint64
	// started is when Start ran. The rest is the fan-out goroutine's own
	// (see unfinished and syncLog): when the last Sync of the attempt
	// log that succeeded began, and when the last one failed (zero since
	// one worked); whether newestLogged was read after the first Sync, and
	// the creation time of the newest delivery logged then (zero: none).
	started       time.Time
	logSynced     time.Time
	logSyncFailed time.Time
	newestRead    bool
	newestLogged  time.Time
	// matched is the fan-out's buffer of the subscriptions an event
	// matches, reused from event to event (only runFanout uses it).
	matched []*subscriptions.Subscription
	// leaderSub receives the announcements of a new fan-out consumer
	// leader; repull asks the fan-out to pull from it anew (see
	// fanoutLeaderElected).
	leaderSub *nats.Subscription
	repull    atomic.Bool

	queue    *fairQueue
	dests    *destination.Tracker
	pub      *publisher
	parkers  *parkers
	held     pendingMsgs
	fanning  fanning
	progress progress

	// runCtx bounds attempts and publications; it is cancelled when a
	// drain runs out of time.
	runCtx    context.Context
	runCancel context.CancelFunc
	// bgCtx ends the background loops when a drain begins.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	workers  sync.WaitGroup
	bg       sync.WaitGroup
	stopOnce sync.Once
	// draining counts what the drain did, for its log line.
	draining  atomic.Bool
	drainDone atomic.Int64
	released  struct{ parked, handedBack atomic.Int64 }
	// stopCtx bounds what a drain stores (deliveries parked as it ends):
	// the deadline Stop was given.
	stopCtx atomic.Pointer[context.Context]
}

// New prepares the dispatcher: it creates the deliveries stream and the
// fan-out consumer. log receives every outcome; index answers the
// questions a retry asks of a delivery's history.
func New(ctx context.Context, js jetstream.JetStream, store *subscriptions.Store, log *deliverylog.Writer, index *deliverylog.Index, cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Dispatcher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dispatcher config: %w", err)
	}
	cfg = cfg.withDefaults()
	d := &Dispatcher{
		cfg: cfg, js: js, store: store, log: log, index: index, logger: logger,
		client: NewClient(cfg.Egress),
		m:      newMetrics(reg),
		queue:  newFairQueue(cfg.PerSubscription, cfg.QueuePerSubscription, cfg.QueueWait),
		pub:    newPublisher(js),
	}
	// Token requests and mtls connections go through clones of a transport
	// like the client's: the same dial guard and timeouts.
	d.auth = endpointauth.NewAuthenticator(endpointauth.AuthenticatorConfig{Base: newTransport(cfg.Egress), Now: cfg.Now})
	d.queue.workers = cfg.Workers
	d.queue.limit = func(tenant string) int {
		if cfg.TenantLimit != nil {
			if n := cfg.TenantLimit(tenant); n > 0 {
				return n
			}
		}
		return cfg.TenantInFlight
	}
	d.dests = destination.New(cfg.Destinations)
	d.queue.dests, d.queue.destOf = d.dests, d.destinationOf
	d.queue.onEvict = func(late []*delivery) {
		for _, dl := range late {
			d.park(dl, laneUnordered)
		}
	}
	d.parkers = newParkers(d)
	var err error
	if d.deliveries, err = ensureDeliveriesStream(ctx, js, cfg); err != nil {
		return nil, err
	}
	if d.events, err = js.Stream(ctx, events.StreamName); err != nil {
		return nil, fmt.Errorf("open stream %s: %w", events.StreamName, err)
	}
	// An existing consumer keeps where it starts (it may have been made
	// again from a sequence): only its other settings are updated.
	fcfg := d.fanoutConfig()
	if c, err := js.Consumer(ctx, events.StreamName, fanoutConsumer); err == nil {
		cur := c.CachedInfo().Config
		fcfg.DeliverPolicy, fcfg.OptStartSeq, fcfg.OptStartTime = cur.DeliverPolicy, cur.OptStartSeq, cur.OptStartTime
	}
	d.fanoutCons, err = jsretry.Provision(ctx, func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, events.StreamName, fcfg)
	})
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s: %w", fanoutConsumer, err)
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "webhooks_destinations_open", Help: "Destinations (scheme, host, port) whose breaker is open: one probe at a time goes through, the rest is retried on the schedule.",
	}, func() float64 { return float64(d.dests.Open()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "webhooks_consumer_pending", Help: "Events not yet fanned out or not yet settled, plus parked deliveries and scheduled retries.",
	}, d.lag))
	return d, nil
}

// destinationOf names the destination of dl's subscription as this
// replica's index has it (empty, untracked, when the index has not seen
// it or its URL does not parse).
func (d *Dispatcher) destinationOf(dl *delivery) string {
	s, ok := d.store.Index().Subscription(dl.tenant, dl.sub)
	if !ok {
		return ""
	}
	u, err := s.Endpoint()
	if err != nil {
		return ""
	}
	return destination.Key(u)
}

// paceOf is s's pace in deliveries a second (zero: none), never below
// the floor a pace may be set to: one stored before the floor was is read
// at the floor.
func paceOf(s *subscriptions.Subscription) float64 {
	if s.RateLimit <= 0 {
		return 0
	}
	return max(s.RateLimit, subscriptions.MinDeliveryRate)
}

// fanoutResume is where a fan-out consumer made again starts: the oldest
// event held here unsettled, else the one after the last read (zero: from
// the start, nothing having been read).
func (d *Dispatcher) fanoutResume() uint64 {
	start := d.lastRead.Load() + 1
	if start == 1 {
		return 0
	}
	for _, m := range d.held.all() {
		if md, err := m.Metadata(); err == nil && md.Stream == events.StreamName && md.Sequence.Stream < start {
			start = md.Sequence.Stream
		}
	}
	return start
}

// fanoutConfig is the durable consumer of events, shared by every replica.
func (d *Dispatcher) fanoutConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       fanoutConsumer,
		Description:   "Matches events against subscriptions and delivers them",
		FilterSubject: events.SubjectAll,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       eventAckWait,
		MaxAckPending: d.cfg.FanoutPending,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// Streams names the streams the dispatcher uses besides the events stream.
func (d *Dispatcher) Streams() []string { return []string{DeliveriesStream} }

// lag reads the fan-out consumer's backlog and what waits in the
// deliveries stream; it runs on a metrics scrape.
func (d *Dispatcher) lag() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var n uint64
	d.fanoutMu.Lock()
	cons := d.fanoutCons
	d.fanoutMu.Unlock()
	if info, err := cons.Info(ctx); err == nil {
		n += info.NumPending + uint64(info.NumAckPending)
	}
	if info, err := d.deliveries.Info(ctx); err == nil {
		n += info.State.Msgs
	}
	return float64(n)
}

// ackWait is how long a parked record is held unacknowledged by one replica
// before another gets it: an attempt's timeout and some slack.
func (d *Dispatcher) ackWait() time.Duration { return d.cfg.Timeout + attemptSlack }

// window is how many of a subscription's parked records one replica holds
// at once: its in-flight cap, or for a paced subscription what its pace
// lets out in QueueWait.
func (d *Dispatcher) window(s *subscriptions.Subscription) int {
	n := d.cfg.PerSubscription
	if pace := paceOf(s); pace > 0 {
		n = min(n, max(1, int(pace*d.cfg.QueueWait.Seconds())))
	}
	return n
}

// Start begins consuming. It returns at once.
func (d *Dispatcher) Start() error {
	d.started = time.Now()
	d.runCtx, d.runCancel = context.WithCancel(context.Background())
	d.bgCtx, d.bgCancel = context.WithCancel(d.runCtx)
	for range d.cfg.Workers {
		d.workers.Add(1)
		go d.runWorker()
	}
	var err error
	d.fanoutIter, err = d.fanoutCons.Messages(fanoutPullOpts()...)
	if err != nil {
		return fmt.Errorf("consume events: %w", err)
	}
	d.leaderSub, err = d.js.Conn().Subscribe(fanoutLeaderSubject, d.fanoutLeaderElected)
	if err != nil {
		d.fanoutIter.Stop()
		return fmt.Errorf("follow the fan-out consumer's leader: %w", err)
	}
	d.bg.Add(3)
	go func() { defer d.bg.Done(); d.parkers.run(d.bgCtx) }()
	go func() { defer d.bg.Done(); d.keepHeldAlive(d.bgCtx) }()
	go func() { defer d.bg.Done(); d.runFanout(d.bgCtx) }()
	return nil
}

// fanoutPull is how many events the fan-out's reader keeps fetched ahead.
const fanoutPull = 256

// fanoutPullOpts are the fan-out reader's pull options. Its pull requests
// expire after 5 s, with a heartbeat every 500 ms while idle (the least
// nats.go allows): a request lost with the consumer's leader (a NATS node
// gone) is noticed after two missed heartbeats and made again, every
// second until a new leader takes it, instead of after nats.go's default
// 30 s expiry. The announcement of the new leader (fanoutLeaderElected)
// usually comes first.
func fanoutPullOpts() []jetstream.PullMessagesOpt {
	return []jetstream.PullMessagesOpt{
		jetstream.PullMaxMessages(fanoutPull),
		jetstream.PullExpiry(5 * time.Second),
		jetstream.PullHeartbeat(500 * time.Millisecond),
	}
}

// fanoutLeaderSubject is the subject on which JetStream announces a new
// leader of the fan-out consumer.
const fanoutLeaderSubject = "$JS.EVENT.ADVISORY.CONSUMER.LEADER_ELECTED." + events.StreamName + "." + fanoutConsumer

// fanoutLeaderElected runs when the fan-out consumer has a new leader. A
// leader that died with its NATS node took this replica's pull request
// with it, and only missed heartbeats tell the reader: it would pull again
// at the next heartbeat missed after the election, up to a second later.
// So a reader that has missed heartbeats and read nothing since (its pull
// is dead, its buffer empty) is drained, and the fan-out pulls from the
// new leader at once. A reader still reading is left alone: a leader that
// steps down alive tells its pulls, and nats.go makes them again itself.
func (d *Dispatcher) fanoutLeaderElected(*nats.Msg) {
	if d.progress.fanoutErr.Load() == nil || !d.repull.CompareAndSwap(false, true) {
		return
	}
	d.fanoutMu.Lock()
	iter := d.fanoutIter
	d.fanoutMu.Unlock()
	iter.Drain() // its Next returns what it holds, then ErrMsgIteratorClosed
}

// runFanout reads events while the queue has room for their deliveries:
// past its budget it waits, and events wait in the stream, where they are
// already stored. A consumer lost (deleted, or gone with a stream's
// leader) is made again; a reader drained on a new consumer leader pulls
// again at once.
func (d *Dispatcher) runFanout(ctx context.Context) {
	iter := d.fanoutIter
	for {
		if err := d.queue.admit(ctx); err != nil {
			return
		}
		m, err := iter.Next()
		switch {
		case err == nil:
			d.progress.fanoutRead()
			d.fanout(ctx, m)
		case ctx.Err() != nil:
			return
		case errors.Is(err, jetstream.ErrMsgIteratorClosed) && d.repull.Swap(false):
			// Drained on a new consumer leader: pull from it at once.
			d.fanoutMu.Lock()
			cons := d.fanoutCons
			d.fanoutMu.Unlock()
			next, err := cons.Messages(fanoutPullOpts()...)
			if err == nil {
				iter = d.setFanout(ctx, cons, next)
				continue
			}
			d.progress.fanoutFailed(err)
			d.consumeError(nil, err)
			if iter = d.reopenFanout(ctx, iter); iter == nil {
				return
			}
		case errors.Is(err, jetstream.ErrMsgIteratorClosed), errors.Is(err, jetstream.ErrConsumerDeleted),
			errors.Is(err, jetstream.ErrConsumerNotFound):
			d.progress.fanoutFailed(err)
			d.consumeError(nil, err)
			if iter = d.reopenFanout(ctx, iter); iter == nil {
				return
			}
		default:
			d.progress.fanoutFailed(err)
			d.consumeError(nil, err)
		}
	}
}

// reopenFanout makes the fan-out consumer again (or binds to the one
// another replica made first) and reads from it, with backoff, until it
// works or ctx ends (nil then). A consumer made here starts at the oldest
// event this replica still holds, or else the one after the last it read:
// never again at the start of the stream, which would send every retained
// event once more.
func (d *Dispatcher) reopenFanout(ctx context.Context, old jetstream.MessagesContext) jetstream.MessagesContext {
	old.Stop()
	wait := time.Second
	for {
		// The server removes a deleted consumer's storage in the
		// background: one made again under its name at once can lose
		// its own state to that removal.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		cons, err := d.js.Consumer(ctx, events.StreamName, fanoutConsumer)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cfg := d.fanoutConfig()
			if start := d.fanoutResume(); start > 0 {
				cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
			}
			cons, err = d.js.CreateConsumer(ctx, events.StreamName, cfg)
			if err == nil {
				d.logger.Warn("fan-out consumer was lost; made again", "from_sequence", cfg.OptStartSeq)
			}
		}
		if err == nil {
			iter, err := cons.Messages(fanoutPullOpts()...)
			if err == nil {
				return d.setFanout(ctx, cons, iter)
			}
		}
		d.progress.fanoutFailed(fmt.Errorf("make the fan-out consumer again: %w", err))
		wait = min(2*wait, 5*time.Second)
	}
}

// setFanout makes cons and iter the fan-out's and returns iter; if ctx
// ended meanwhile, iter is stopped, since Stop, which ends ctx first, may
// have stopped the one before.
func (d *Dispatcher) setFanout(ctx context.Context, cons jetstream.Consumer, iter jetstream.MessagesContext) jetstream.MessagesContext {
	d.fanoutMu.Lock()
	defer d.fanoutMu.Unlock()
	d.fanoutCons, d.fanoutIter = cons, iter
	if ctx.Err() != nil {
		iter.Stop()
	}
	return iter
}

// consumeError logs a consumer's trouble, except the expected end of a
// connection at shutdown.
func (d *Dispatcher) consumeError(_ jetstream.ConsumeContext, err error) {
	if errors.Is(err, nats.ErrConnectionClosed) {
		return
	}
	d.m.consumeErrors.Inc()
	d.logger.Warn("consume", "err", err)
}

// Stop drains: it stops taking events and parked records, lets the
// deliveries in memory be made until a little before ctx ends, then parks
// what is left (queued deliveries, and attempts cut short, which count as
// no attempt) so it waits durably, and returns once every goroutine has.
// What cannot be parked is handed back to JetStream for redelivery. The
// log says how many of each.
func (d *Dispatcher) Stop(ctx context.Context) {
	d.stopOnce.Do(func() {
		d.stopCtx.Store(&ctx)
		d.draining.Store(true)
		if d.leaderSub != nil {
			_ = d.leaderSub.Unsubscribe() // fails only on a closed connection
		}
		d.bgCancel()
		d.fanoutMu.Lock()
		if d.fanoutIter != nil {
			d.fanoutIter.Stop() // events fetched and not yet read are redelivered
		}
		d.fanoutMu.Unlock()
		d.bg.Wait() // the fan-out has returned, the parkers' consumers are stopped
		// What came from lanes goes back to them now: their next owner
		// keeps their pace and order (this replica would run beside it).
		for _, dl := range d.queue.takeParked() {
			d.release(dl)
		}

		// Let the queue empty until the reserve kept for parking the rest.
		soft := ctx
		if deadline, ok := ctx.Deadline(); ok {
			reserve := min(time.Until(deadline)/5, 2*time.Second)
			var cancel context.CancelFunc
			soft, cancel = context.WithDeadline(ctx, deadline.Add(-reserve))
			defer cancel()
		}
		d.queue.waitEmpty(soft)
		left := d.queue.close()
		d.runCancel() // attempts still in flight are cut and released
		var wg sync.WaitGroup
		for _, dl := range left {
			wg.Go(func() { d.release(dl) })
		}
		d.workers.Wait()
		wg.Wait()
		d.pub.close(ctx)
		d.logger.Info("dispatcher stopped", "settled_during_drain", d.drainDone.Load(),
			"parked", d.released.parked.Load(), "handed_back", d.released.handedBack.Load())
	})
}

// keepHeldAlive tells JetStream, a third of the ack wait apart, that the
// messages held in memory are still being worked on.
func (d *Dispatcher) keepHeldAlive(ctx context.Context) {
	every := eventAckWait / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := time.Now()
			for _, m := range d.held.older(now.Add(-every), now) {
				d.settleMsg(m, opInProgress, 0)
			}
		}
	}
}

// fanout puts one delivery of an event on the queue of each matching
// active subscription. A subscription whose queue has no room, or that is
// paced, gets its delivery parked instead; a disabled one gets a skipped
// record; a FIFO one reads the events stream itself. The event is
// acknowledged once each delivery is settled. An event delivered again is
// not fanned out twice: it joins its deliveries still being made here,
// and leaves out those the attempt log shows finished (unfinished). ctx
// bounds the fan-out's waits on the attempt log.
func (d *Dispatcher) fanout(ctx context.Context, m jetstream.Msg) {
	tenant, typ, err := events.ParseSubject(m.Subject())
	if err != nil {
		d.logger.Error("fan-out: drop a message on a malformed subject", "subject", m.Subject())
		d.settleMsg(m, opTerm, 0)
		return
	}
	md, err := m.Metadata()
	if err != nil {
		d.logger.Error("fan-out: message without metadata", "subject", m.Subject(), "err", err)
		d.settleMsg(m, opNak, time.Second)
		return
	}
	// Delivered again (a consumer that lost its state sends it as new,
	// but after events this replica fanned out already): while its
	// deliveries are still being made here, it joins them.
	again := md.NumDelivered > 1 || md.Sequence.Stream <= d.lastRead.Load()
	if again && d.fanning.join(md.Sequence.Stream, m) {
		d.held.add(m, time.Now())
		return
	}
	eventID := m.Headers().Get(events.HeaderEventID)
	if eventID == "" {
		e, err := events.Parse(m.Data())
		if err != nil || !events.ValidID(e.ID) {
			d.logger.Error("fan-out: drop an event without a valid id", "subject", m.Subject())
			d.settleMsg(m, opTerm, 0)
			return
		}
		eventID = e.ID
	}
	d.m.events.Inc()
	sc := d.cfg.Tracer.Stored(m.Headers(), tenant, eventID)
	matched := 0
	if d.cfg.Tracer.Enabled() {
		span := d.fanoutSpan(sc, tenant, eventID, typ)
		defer func() {
			span.SetAttributes(attribute.Int("webhook.deliveries", matched))
			span.End()
		}()
	}
	subs := d.store.Index().Match(d.matched[:0], tenant, typ)
	defer func() {
		clear(subs) // what the next event matches is found again
		d.matched = subs[:0]
	}()
	// A FIFO subscription reads its tenant's events in their own order
	// (receiveFIFO): the fan-out leaves it out.
	subs = slices.DeleteFunc(subs, (*subscriptions.Subscription).Ordered)
	subs = d.store.Filter(subs, m.Data()) // payload filters: no delivery for an event left out
	switch {
	case len(subs) == 0:
	case again:
		subs = d.unfinished(ctx, subs, tenant, md, time.Now().Add(-logSyncReuse))
	case md.Timestamp.Before(d.started) && d.mayBeLogged(ctx, md.Timestamp):
		// Stored before this process started: the process before it
		// (this replica killed, with the NATS it embedded) may have
		// made its deliveries without its acknowledgement being kept.
		subs = d.unfinished(ctx, subs, tenant, md, d.started)
	}
	if len(subs) == 0 {
		d.settleMsg(m, opAck, 0)
		return
	}
	d.lastRead.Store(max(d.lastRead.Load(), md.Sequence.Stream))
	matched = len(subs)
	ev := &event{msg: m, tenant: tenant, id: eventID, typ: typ, seq: md.Sequence.Stream, body: m.Data(), trace: sc}
	ev.remaining.Store(int32(len(subs)))
	d.held.add(m, time.Now())
	d.fanning.add(ev)
	for _, s := range subs {
		dl := &delivery{id: DeliveryID(md.Timestamp, ev.seq, s.ID), tenant: tenant, sub: s.ID, ev: ev, attempt: 1, created: md.Timestamp.UTC()}
		switch {
		case !s.Active:
			// Kept as skipped, so the tenant sees it and a replay after
			// re-enabling can send it; the id makes it one record however
			// often the event is fanned out.
			d.m.attempts.WithLabelValues(outcomeSkipped).Inc()
			d.commit(dl, dl.record(deliverylog.StatusSkipped), nil)
		case s.RateLimit > 0:
			d.park(dl, laneUnordered)
		case !d.queue.push(dl, 0, false):
			d.park(dl, laneUnordered)
		}
	}
}

// unfinished keeps, of the subscriptions an event that may have been
// fanned out before matched, those whose delivery of it the attempt log
// does not show finished (succeeded, or failed for good). An event comes
// again when its acknowledgement was lost: a NATS server killed forgets
// up to 100 ms of its consumers' acknowledgements (and sends those events
// as new), and this process killed, or cut off from NATS, loses those not
// yet sent. Its deliveries were then usually made and logged already, and
// making them again would send every receiver a duplicate.
//
// The log should hold what was logged before since (syncLog). Read stale,
// it shows fewer deliveries finished, never more: a delivery it does not
// show, or shows pending (its retry may not have been stored), or a log
// that cannot be read keeps the delivery, which is made again: at least
// once.
func (d *Dispatcher) unfinished(ctx context.Context, subs []*subscriptions.Subscription, tenant string, md *jetstream.MsgMetadata, since time.Time) []*subscriptions.Subscription {
	d.syncLog(ctx, since)
	return slices.DeleteFunc(subs, func(s *subscriptions.Subscription) bool {
		done, err := d.index.Finished(tenant, DeliveryID(md.Timestamp, md.Sequence.Stream, s.ID))
		if err != nil || !done {
			return false
		}
		d.m.alreadyMade.Inc()
		return true
	})
}

// mayBeLogged reports whether deliveries of an event stored at t may be in
// the attempt log: not when the newest delivery it held once brought up to
// date after this process started was created before t (a fan-out
// delivery is created at its event's stored time). So a backlog stored
// before a restart and never fanned out is not looked up event by event.
// Unknown (the log could not be brought up to date or read) is true.
func (d *Dispatcher) mayBeLogged(ctx context.Context, t time.Time) bool {
	if !d.newestRead {
		if !d.syncLog(ctx, d.started) {
			return true
		}
		newest, _, err := d.index.NewestCreated()
		if err != nil {
			return true
		}
		d.newestRead, d.newestLogged = true, newest
	}
	return !t.After(d.newestLogged)
}

// syncLog brings this replica's attempt log up to what was logged before
// since (one Sync, bounded by logSyncWait), unless a Sync that began after
// since did already, and reports whether the log is known to hold it. A
// stale log is safe to read (see unfinished), so after a failure the
// fan-out goes on, tries again only logSyncRetry later, and says so in the
// log once until a Sync works again. Only the fan-out goroutine calls it.
func (d *Dispatcher) syncLog(ctx context.Context, since time.Time) bool {
	if !d.logSynced.Before(since) {
		return true
	}
	began := time.Now()
	if began.Sub(d.logSyncFailed) < logSyncRetry {
		return false
	}
	sctx, cancel := context.WithTimeout(ctx, logSyncWait)
	err := d.index.Sync(sctx)
	cancel()
	if err != nil {
		if d.logSyncFailed.IsZero() {
			d.logger.Warn("fan-out: the attempt log is not up to date; events read again may be delivered again until it is", "err", err)
		}
		d.logSyncFailed = began
		return false
	}
	if !d.logSyncFailed.IsZero() {
		d.logger.Info("fan-out: the attempt log is up to date again")
	}
	d.logSynced, d.logSyncFailed = began, time.Time{}
	return true
}

// The fan-out's Syncs of the attempt log (syncLog). logSyncReuse is how
// long one covers the events read again after it began: a burst of them
// (a NATS server restarted) costs a Sync every quarter second, not one
// each, and an attempt logged in between is not seen, so it is made
// again. logSyncWait bounds one Sync, and logSyncRetry is the pause after
// one failed: the fan-out waits on the log at most a second at a time.
const (
	logSyncReuse = 250 * time.Millisecond
	logSyncWait  = time.Second
	logSyncRetry = time.Second
)

// fanoutSpan starts the span of an event's fan-out on this replica, in
// the trace the event was stored with.
func (d *Dispatcher) fanoutSpan(sc trace.SpanContext, tenant, id, typ string) trace.Span {
	_, span := d.cfg.Tracer.Start(trace.ContextWithRemoteSpanContext(d.runCtx, sc), "fanout "+typ,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "process"),
			attribute.String("webhook.event.id", id),
			attribute.String("webhook.event.type", typ),
			attribute.String("webhook.tenant.id", tenant),
		))
	return span
}

// park stores d as a parked record on its subscription's lane and settles
// it once stored; the lane's consumer reads it back at the subscription's
// pace.
//
// A delivery parked before its first attempt is logged as pending with
// it, so the tenant sees it waiting (in its subscription's backlog, its
// event's deliveries, the pending list) before anything is sent.
func (d *Dispatcher) park(dl *delivery, lane byte) {
	d.m.parked.Inc()
	msgs := []*nats.Msg{parkMsg(dl, lane)}
	if dl.attempt == 1 && !dl.manual && dl.parked == nil {
		d.commit(dl, dl.record(deliverylog.StatusPending), msgs)
	} else {
		d.progress.started()
		d.pub.publish(d.runCtx, msgs, func(err error) {
			d.progress.finished()
			d.settle(dl, err)
		})
	}
	d.parkers.want(parkKey{tenant: dl.tenant, sub: dl.sub, lane: lane}, time.Time{})
}

// release hands back a delivery that was not attempted because the
// dispatcher stops: one from the fan-out is parked (its event is then
// acknowledged as usual, so its other deliveries are not repeated), one
// read from a parked record is handed back to its lane. It waits for the
// parking to be stored.
func (d *Dispatcher) release(dl *delivery) {
	if dl.parked != nil {
		d.held.remove(dl.parked)
		d.settleMsg(dl.parked, opNak, 0)
		d.released.handedBack.Add(1)
		return
	}
	ctx := context.Background()
	if p := d.stopCtx.Load(); p != nil {
		ctx = *p
	}
	futures, err := events.PublishAsync(ctx, d.js, []*nats.Msg{parkMsg(dl, laneUnordered)})
	if err == nil {
		err = events.AwaitAll(ctx, ackTimeout, futures)
	}
	if err == nil {
		d.released.parked.Add(1)
	} else {
		d.released.handedBack.Add(1)
	}
	d.settle(dl, err)
}

// settle ends d's part in its message: a delivery from the fan-out counts
// down its event, acknowledged once all are settled (or handed back, if
// any failed, to be fanned out again); a parked one is acknowledged, or
// handed back on failure.
func (d *Dispatcher) settle(dl *delivery, err error) {
	if err != nil && !errors.Is(err, errClosed) && !d.draining.Load() {
		// (A drain counts what it hands back and says so once.)
		d.logger.Warn("deliver: settle a delivery; its message is handed back", "delivery", dl.id, "err", err)
	}
	if d.draining.Load() && err == nil {
		d.drainDone.Add(1)
	}
	if dl.parked != nil {
		d.held.remove(dl.parked)
		if err != nil {
			d.settleMsg(dl.parked, opNak, time.Second)
			return
		}
		d.settleMsg(dl.parked, opAck, 0)
		return
	}
	ev := dl.ev
	if err != nil {
		ev.failed.Store(true)
	}
	if ev.remaining.Add(-1) > 0 {
		return
	}
	op, delay := opAck, time.Duration(0)
	if ev.failed.Load() {
		op, delay = opNak, time.Second
	}
	for _, m := range d.fanning.done(ev) { // the event delivered again meanwhile
		d.held.remove(m)
		d.settleMsg(m, op, delay)
	}
	d.held.remove(ev.msg)
	d.settleMsg(ev.msg, op, delay)
}

// commit appends d's outcome to the attempt log and stores msgs (a
// schedule, events for the tenant), then settles d once all are stored.
func (d *Dispatcher) commit(dl *delivery, rec deliverylog.Record, msgs []*nats.Msg) {
	d.storeOutcome(rec, msgs, func(err error) {
		d.progress.finished()
		d.settle(dl, err)
	})
}

// commitThen appends rec and stores msgs, then calls then with the first
// error, if any.
func (d *Dispatcher) commitThen(rec deliverylog.Record, msgs []*nats.Msg, then func(error)) {
	d.storeOutcome(rec, msgs, func(err error) {
		d.progress.finished()
		then(err)
	})
}

// storeOutcome is commit and commitThen: it counts one store in
// progress, appends rec and stores msgs, and calls done, which ends the
// count, with the first error, if any.
func (d *Dispatcher) storeOutcome(rec deliverylog.Record, msgs []*nats.Msg, done func(error)) {
	d.progress.started()
	switch {
	case len(msgs) == 0: // the record alone: nothing to join
	case rec.Status == deliverylog.StatusSucceeded || rec.Status == deliverylog.StatusFailed:
		// What goes with a finished record (delivery.exhausted, a
		// health event) is stored first, the record after it: a log
		// that shows a delivery finished has stored all of it, so an
		// event fanned out again can leave the delivery out
		// (unfinished) without losing what it was to send.
		d.pub.publish(d.runCtx, msgs, func(err error) {
			if err != nil {
				done(err)
				return
			}
			go func() { // off the publisher's goroutine: Append may wait for room
				if err := d.log.Append(d.runCtx, rec, done); err != nil {
					done(err)
				}
			}()
		})
		return
	default:
		done = join(2, done)
		d.pub.publish(d.runCtx, msgs, done)
	}
	if err := d.log.Append(d.runCtx, rec, done); err != nil {
		done(err)
	}
}

// Operations on a consumed message.
const (
	opAck        = "ack"
	opNak        = "nak"
	opTerm       = "term"
	opInProgress = "in_progress"
)

// settleMsg performs op on m; a failure is logged and counted, never
// dropped silently (the message is then redelivered after its ack wait).
func (d *Dispatcher) settleMsg(m jetstream.Msg, op string, delay time.Duration) {
	var err error
	switch op {
	case opAck:
		err = m.Ack()
	case opNak:
		if delay > 0 {
			err = m.NakWithDelay(delay)
		} else {
			err = m.Nak()
		}
	case opTerm:
		err = m.Term()
	case opInProgress:
		err = m.InProgress()
	}
	if err != nil {
		d.m.ackErrors.WithLabelValues(op).Inc()
		d.logger.Warn("jetstream: "+op+" failed; the message will be redelivered", "subject", m.Subject(), "err", err)
	}
}
