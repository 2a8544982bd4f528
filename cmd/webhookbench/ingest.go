package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/onestack/webhooks/events"
)

// Ingest paths.
const (
	ingestHTTP      = "http"      // POST /api/events/batch with the tenant's key
	ingestPublisher = "publisher" // events.Publisher over NATS
)

// A job is one batch for an ingest worker.
type job struct {
	p   *phase
	ph  int
	seq int64 // first sequence number
	n   int
	due time.Time // when the pacer scheduled it
}

// An ingester feeds events to one stack through a pool of workers, as one
// tenant (the stack's bench tenant unless key is changed before the first
// offer).
type ingester struct {
	mode string
	st   *stack
	key  string // the tenant's API key, for the HTTP path
	// single sends a batch of one event alone, to POST /api/events.
	single bool
	// ids gives each event posted an id of its own (bench-<phase>-<seq>),
	// as a producer that retries would, rather than leave it to webhookd.
	ids  bool
	jobs chan job
	wg   sync.WaitGroup
}

func newIngester(ctx context.Context, mode string, st *stack, workers int) *ingester {
	in := &ingester{mode: mode, st: st, key: st.apiKey, jobs: make(chan job, 4096)}
	for range workers {
		in.wg.Go(func() {
			for j := range in.jobs {
				in.do(ctx, j)
				j.p.inflight.Done()
			}
		})
	}
	return in
}

// close stops the workers once the queued jobs are done.
func (in *ingester) close() {
	close(in.jobs)
	in.wg.Wait()
}

func (in *ingester) do(ctx context.Context, j job) {
	var status int
	var err error
	switch in.mode {
	case ingestHTTP:
		status, err = in.post(ctx, j)
	default:
		err = in.publish(ctx, j)
		status = http.StatusAccepted
	}
	done := time.Now()
	lat := done.Sub(j.due)
	p := j.p
	p.requests.Add(1)
	p.ingest.RecordDuration(lat)
	if s := int(j.due.Sub(p.start) / time.Second); s >= 0 && s < len(p.ingestSec) {
		p.ingestSec[s].RecordDuration(lat)
	}
	switch {
	case err != nil:
		p.errs.Add(1)
		msg := err.Error()
		p.lastErr.Store(&msg)
	case status == http.StatusAccepted:
		p.accepted.Add(int64(j.n))
	case status == http.StatusTooManyRequests:
		p.r429.Add(1)
	default:
		p.non202.Add(1)
		msg := fmt.Sprintf("POST %s: %d", in.route(j), status)
		p.lastErr.Store(&msg)
	}
}

// route is the path a job is posted to.
func (in *ingester) route(j job) string {
	if in.single && j.n == 1 {
		return "/api/events"
	}
	return "/api/events/batch"
}

// post sends one batch to POST /api/events/batch, or one event alone to
// POST /api/events when the ingester is single.
func (in *ingester) post(ctx context.Context, j job) (int, error) {
	now := time.Now().UnixNano()
	route := in.route(j)
	b := make([]byte, 0, 32+j.n*110)
	if route == "/api/events/batch" {
		b = append(b, `{"events":[`...)
	}
	for i := range j.n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":"ticket.updated",`...)
		if in.ids {
			b = append(b, `"id":"bench-`...)
			b = strconv.AppendInt(b, int64(j.ph), 10)
			b = append(b, '-')
			b = strconv.AppendInt(b, j.seq+int64(i), 10)
			b = append(b, `",`...)
		}
		b = append(b, `"data":`...)
		b = appendData(b, j.ph, j.seq+int64(i), now)
		b = append(b, '}')
	}
	if route == "/api/events/batch" {
		b = append(b, "]}"...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.st.url+route, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+in.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := in.st.hc.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// publish sends one batch through events.Publisher and awaits its acks.
func (in *ingester) publish(ctx context.Context, j job) error {
	now := time.Now()
	evts := make([]events.Event, j.n)
	for i := range evts {
		evts[i] = events.Event{
			ID: events.NewID(), Type: "ticket.updated", TenantID: in.st.tenantID, OccurredAt: now.UTC(),
			Data: appendData(make([]byte, 0, 96), j.ph, j.seq+int64(i), now.UnixNano()),
		}
	}
	return in.st.pub.PublishEvents(ctx, false, evts...)
}

// offer runs the open-loop pacer: it issues total events of phase p (or,
// when total is 0, rate*d of them) at rate events/s from start, handing each
// batch to the workers at its due time whether or not earlier ones are done.
// It returns when the last batch is handed over; p.inflight.Wait waits for
// the answers.
func (in *ingester) offer(ctx context.Context, p *phase, ph int, pl plan, start time.Time, d time.Duration, total int64) {
	if total == 0 {
		total = pl.Events(d)
	}
	p.start = start
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for k := range pl.Batches(total) {
		due := start.Add(pl.Due(k))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		n := pl.BatchSize(k, total)
		j := job{p: p, ph: ph, seq: in.st.tr.seqs(n), n: n, due: due}
		p.inflight.Add(1)
		p.offered.Add(int64(n))
		select {
		case in.jobs <- j:
		case <-ctx.Done():
			p.inflight.Done()
			return
		}
		if lag := time.Since(due); lag > time.Duration(p.maxLagNs.Load()) {
			p.maxLagNs.Store(int64(lag))
		}
	}
}
