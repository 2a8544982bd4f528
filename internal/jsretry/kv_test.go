package jsretry

import (
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
)

func TestRevisionMismatch(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"10071", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}, true},
		{"10164 from a replicated bucket", fmt.Errorf("update: %w", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}), true},
		{"nats.go's sentinel", fmt.Errorf("update: %w", jetstream.ErrKeyRevisionMismatch), true},
		{"another API error", &jetstream.APIError{ErrorCode: jetstream.JSErrCodeStreamNotFound}, false},
		{"another error", errors.New("timeout"), false},
	}
	for _, tt := range tests {
		if got := RevisionMismatch(tt.err); got != tt.want {
			t.Errorf("%s: RevisionMismatch = %v, want %v", tt.name, got, tt.want)
		}
	}
}
