package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onestack/webhooks/events"
	"github.com/onestack/webhooks/signature"
)

// baselineResult is the bare net/http figure every ratio is taken against.
type baselineResult struct {
	Goroutines int       `json:"goroutines"`
	Seconds    float64   `json:"seconds"`
	Requests   int64     `json:"requests"`
	Errors     int64     `json:"errors"`
	PerSecond  float64   `json:"perSecond"`
	BodyBytes  int       `json:"bodyBytes"`
	Latency    quantiles `json:"latency"`
	BenchCores float64   `json:"benchCores"` // CPU of this process (client and receiver) over the run
	OtherCores float64   `json:"otherCores"` // user-mode CPU of every other process of the machine: interference
	Verified   int64     `json:"verified"`
}

// runBaseline posts Standard Webhooks-signed bodies, shaped and sized like
// the deliveries webhookd sends, from conc goroutines in a closed loop to a
// receiver of the same kind as the subscriptions' for d.
func runBaseline(ctx context.Context, conc int, d time.Duration, verifySample float64, ticks int64) (baselineResult, error) {
	tr := newTracker()
	r, err := newReceiver(tr, 0, verifySample)
	if err != nil {
		return baselineResult{}, err
	}
	defer r.Close()
	secret := signature.NewSecret()
	if err := r.setSecret(secret.Reveal()); err != nil {
		return baselineResult{}, err
	}
	p := newPhase("baseline", []int{0}, 0)
	ph := tr.addPhase(p)
	tenant := "ten_" + strings.TrimPrefix(events.NewID(), events.IDPrefix)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * conc, MaxIdleConns: 2 * conc}}
	defer hc.CloseIdleConnections()
	url := r.URL()

	var n, errs atomic.Int64
	var bodyLen atomic.Int64
	lat := new(histogram)
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	self0, _ := readProc(pidSelf())
	m0, _ := readCPUTimes()
	start := time.Now()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			data := make([]byte, 0, 128)
			for ctx.Err() == nil {
				now := time.Now()
				seq := tr.seqs(1)
				e := events.Event{ID: events.NewID(), Type: "ticket.updated", TenantID: tenant, OccurredAt: now.UTC(),
					Data: appendData(data[:0], ph, seq, now.UnixNano())}
				body := e.Marshal()
				bodyLen.Store(int64(len(body)))
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					errs.Add(1)
					return
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set(signature.HeaderID, e.ID)
				req.Header.Set(signature.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
				req.Header.Set(signature.HeaderSignature, signature.Sign(secret, e.ID, now, body))
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				n.Add(1)
				lat.RecordDuration(time.Since(now))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	self1, _ := readProc(pidSelf())
	m1, _ := readCPUTimes()
	bench := cores(self1.CPUTicks-self0.CPUTicks, ticks, elapsed)
	return baselineResult{
		Goroutines: conc, Seconds: elapsed.Seconds(), Requests: n.Load(), Errors: errs.Load(),
		PerSecond: float64(n.Load()) / elapsed.Seconds(), BodyBytes: int(bodyLen.Load()), Latency: summarize(lat),
		BenchCores: bench, Verified: r.verified.Load(),
		OtherCores: otherCores(m0, m1, procSample{}, procSample{}, self0, self1, ticks, elapsed),
	}, nil
}

// cores turns a CPU tick delta over a wall time into cores used.
func cores(dticks uint64, ticks int64, wall time.Duration) float64 {
	if wall <= 0 || ticks <= 0 {
		return 0
	}
	return float64(dticks) / float64(ticks) / wall.Seconds()
}
