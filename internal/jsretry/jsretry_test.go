package jsretry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestDo(t *testing.T) {
	errOther := errors.New("bad request")
	noPeers := &jetstream.APIError{Code: 500, ErrorCode: 10005, Description: "no suitable peers for placement, peer offline"}
	badConfig := &jetstream.APIError{Code: 400, ErrorCode: 10052, Description: "stream configuration is invalid"}
	full := &jetstream.APIError{Code: 503, ErrorCode: 10077, Description: "maximum bytes exceeded"}
	unavailable := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	tests := []struct {
		name   string
		errs   []error // op's answers, in turn; nil after them
		retry  func(error) bool
		wantN  int
		wantOK bool
	}{
		{"succeeds at once", nil, Unsent, 1, true},
		{"rides over an election", []error{nats.ErrNoResponders, fmt.Errorf("publish: %w", nats.ErrNoResponders)}, Unsent, 3, true},
		{"a timeout is not retried for a write", []error{nats.ErrTimeout}, Unsent, 1, false},
		{"a timeout is retried for a read", []error{nats.ErrTimeout, nats.ErrTimeout}, Unanswered, 3, true},
		{"other errors are returned at once", []error{errOther}, Unanswered, 1, false},
		{"a cluster short of peers places the stream later", []error{noPeers, fmt.Errorf("ensure stream: %w", noPeers)}, Provisionable, 3, true},
		{"a create is retried when unanswered", []error{nats.ErrTimeout}, Provisionable, 2, true},
		{"a stream made again while the old one's storage goes is created later", []error{&jetstream.APIError{Code: 500, ErrorCode: codeStoreCreate, Description: "error creating store for stream"}}, Provisionable, 2, true},
		{"a bad stream config is not retried", []error{badConfig}, Provisionable, 1, false},
		{"no peers is not retried for a write", []error{noPeers}, Unanswered, 1, false},
		{"a store at its limit is not retried", []error{fmt.Errorf("publish: %w", full)}, Unanswered, 1, false},
		{"a 503 of a cluster electing is retried", []error{unavailable}, Unsent, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 0
			err := Do(context.Background(), tt.retry, func(context.Context) error {
				n++
				if n <= len(tt.errs) {
					return tt.errs[n-1]
				}
				return nil
			})
			if n != tt.wantN || (err == nil) != tt.wantOK {
				t.Errorf("Do = %v after %d calls, want ok %v after %d", err, n, tt.wantOK, tt.wantN)
			}
		})
	}
}

// TestDoStopsAtTheDeadline: a cluster that never answers fails the call
// within the caller's deadline, with the last error.
func TestDoStopsAtTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		deadline, _ := ctx.Deadline()
		tries := 0
		err := Do(ctx, Unsent, func(context.Context) error { tries++; return nats.ErrNoResponders })
		if !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("Do = %v, want the last error", err)
		}
		if time.Now().After(deadline) {
			t.Errorf("Do returned %v past the deadline", time.Since(deadline))
		}
		if tries < 4 {
			t.Errorf("%d tries in 3 s of backoff, want several", tries)
		}
	})
}

// TestUntilStopsAtItsDeadline: the deadline given bounds the tries
// without one on ctx, and each try gets ctx as it is.
func TestUntilStopsAtItsDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		deadline := time.Now().Add(3 * time.Second)
		tries := 0
		err := Until(context.Background(), deadline, Unsent, func(ctx context.Context) error {
			if _, ok := ctx.Deadline(); ok {
				t.Error("op got a context with a deadline, want the caller's")
			}
			tries++
			return nats.ErrNoResponders
		})
		if !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("Until = %v, want the last error", err)
		}
		if time.Now().After(deadline) {
			t.Errorf("Until returned %v past the deadline", time.Since(deadline))
		}
		if tries < 4 {
			t.Errorf("%d tries in 3 s of backoff, want several", tries)
		}
	})
}

// TestProvisionTriesAgainWhenARequestIsLost: a create the cluster never
// answers is made again after one try's bound, not left to use up the
// whole budget. The clock is synctest's: the second try comes exactly one
// try's bound and one first backoff after the start, however slow the
// machine.
func TestProvisionTriesAgainWhenARequestIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tries := 0
		start := time.Now()
		got, err := Provision(context.Background(), func(ctx context.Context) (string, error) {
			tries++
			if tries == 1 {
				<-ctx.Done() // lost: no answer
				return "", ctx.Err()
			}
			return "stream", nil
		})
		if err != nil || got != "stream" || tries != 2 {
			t.Fatalf("Provision = %q, %v after %d tries, want the stream after 2", got, err, tries)
		}
		if took := time.Since(start); took < provisionTry || took > provisionTry+firstWait {
			t.Errorf("the second try came after %v, want %v and one backoff of at most %v", took, provisionTry, firstWait)
		}
	})
}
