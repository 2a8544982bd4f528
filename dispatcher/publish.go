package dispatcher

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/onestack/webhooks/events"
)

// ackTimeout bounds the wait for one publication's acknowledgement.
const ackTimeout = 10 * time.Second

// errClosed is a publication refused because the dispatcher stopped.
var errClosed = errors.New("dispatcher stopped")

// publisher publishes asynchronously and calls back once the server has
// stored a group of messages: no caller waits for a round trip, and one
// goroutine awaits the acknowledgements in order.
type publisher struct {
	js jetstream.JetStream

	mu     sync.RWMutex
	closed bool
	jobs   chan pubJob
	idle   chan struct{}
	// ctx ends the waits for acknowledgements when close runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
}

type pubJob struct {
	futures []jetstream.PubAckFuture
	done    func(error)
}

func newPublisher(js jetstream.JetStream) *publisher {
	p := &publisher{js: js, jobs: make(chan pubJob, 16384), idle: make(chan struct{})}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	go p.await()
	return p
}

// publish stores msgs and calls done once with nil when all are stored, or
// with the first error (some may be stored nonetheless). done must be
// cheap: it runs on the awaiting goroutine.
func (p *publisher) publish(ctx context.Context, msgs []*nats.Msg, done func(error)) {
	if len(msgs) == 0 {
		done(nil)
		return
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		done(errClosed)
		return
	}
	futures, err := events.PublishAsync(ctx, p.js, msgs)
	if err != nil {
		done(err)
		return
	}
	select {
	case p.jobs <- pubJob{futures: futures, done: done}:
	case <-ctx.Done():
		done(ctx.Err())
	}
}

// await calls back each job once its acknowledgements are in, or one
// failed, or ackTimeout passed.
func (p *publisher) await() {
	defer close(p.idle)
	for j := range p.jobs {
		j.done(events.AwaitAll(p.ctx, ackTimeout, j.futures))
	}
}

// close refuses further publications and returns once every accepted one
// is called back: those still unacknowledged when ctx ends are called back
// with its error at once.
func (p *publisher) close(ctx context.Context) {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.jobs)
	}
	p.mu.Unlock()
	select {
	case <-p.idle:
	case <-ctx.Done():
		p.cancel()
		<-p.idle
	}
	p.cancel()
}

// join calls done once, after n calls of its func, with the first error
// any of them got.
func join(n int, done func(error)) func(error) {
	var (
		mu    sync.Mutex
		first error
	)
	return func(err error) {
		mu.Lock()
		if err != nil && first == nil {
			first = err
		}
		n--
		last, e := n == 0, first
		mu.Unlock()
		if last {
			done(e)
		}
	}
}

// pendingMsgs are messages this replica holds unacknowledged while their
// deliveries wait in memory; a keeper tells JetStream they are still being
// worked on, so a short ack wait (a quick redelivery after a crash) does
// not redeliver them while they wait.
type pendingMsgs struct {
	mu sync.Mutex
	m  map[jetstream.Msg]time.Time
}

func (p *pendingMsgs) add(m jetstream.Msg, at time.Time) {
	p.mu.Lock()
	if p.m == nil {
		p.m = make(map[jetstream.Msg]time.Time)
	}
	p.m[m] = at
	p.mu.Unlock()
}

func (p *pendingMsgs) remove(m jetstream.Msg) {
	p.mu.Lock()
	delete(p.m, m)
	p.mu.Unlock()
}

// older returns the messages held since before t, marking them as
// refreshed at now.
func (p *pendingMsgs) older(t, now time.Time) []jetstream.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []jetstream.Msg
	for m, at := range p.m {
		if at.Before(t) {
			out = append(out, m)
			p.m[m] = now
		}
	}
	return out
}

func (p *pendingMsgs) all() []jetstream.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]jetstream.Msg, 0, len(p.m))
	for m := range p.m {
		out = append(out, m)
	}
	return out
}

func (p *pendingMsgs) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}
