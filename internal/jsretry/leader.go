package jsretry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A KV bucket answers Get from any replica of its stream (direct get): on
// a cluster, a follower that has not yet applied a write answers with the
// value before it. LeaderGet asks the stream's leader instead, which has
// every write it acknowledged: a read right after a write made through
// another replica sees it.

// Codes of JetStream's answers to a message get.
const codeMessageNotFound = 10037

type msgGetResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		ErrCode     int    `json:"err_code"`
		Description string `json:"description"`
	} `json:"error,omitempty"`
	Message *struct {
		Subject  string    `json:"subject"`
		Sequence uint64    `json:"seq"`
		Header   []byte    `json:"hdrs,omitempty"`
		Data     []byte    `json:"data,omitempty"`
		Time     time.Time `json:"time"`
	} `json:"message,omitempty"`
}

// LeaderGet reads key of bucket from its stream's leader, riding over an
// election like Get. A key never written, deleted or purged is
// jetstream.ErrKeyNotFound.
func LeaderGet(ctx context.Context, js jetstream.JetStream, bucket, key string) (jetstream.KeyValueEntry, error) {
	req, _ := json.Marshal(map[string]string{"last_by_subj": "$KV." + bucket + "." + key})
	subject := "$JS.API.STREAM.MSG.GET.KV_" + bucket
	var e jetstream.KeyValueEntry
	err := Do(ctx, Unanswered, func(ctx context.Context) error {
		if _, ok := ctx.Deadline(); !ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
		}
		reply, err := js.Conn().RequestWithContext(ctx, subject, req)
		if err != nil {
			return err
		}
		var resp msgGetResponse
		if err := json.Unmarshal(reply.Data, &resp); err != nil {
			return fmt.Errorf("decode message get: %w", err)
		}
		if resp.Error != nil {
			if resp.Error.ErrCode == codeMessageNotFound {
				return jetstream.ErrKeyNotFound
			}
			return &jetstream.APIError{Code: resp.Error.Code, ErrorCode: jetstream.ErrorCode(resp.Error.ErrCode), Description: resp.Error.Description}
		}
		if resp.Message == nil {
			return jetstream.ErrKeyNotFound
		}
		op := jetstream.KeyValuePut
		if len(resp.Message.Header) > 0 {
			h, err := nats.DecodeHeadersMsg(resp.Message.Header)
			if err != nil {
				return fmt.Errorf("decode message headers: %w", err)
			}
			switch h.Get("KV-Operation") {
			case "DEL", "PURGE":
				return jetstream.ErrKeyNotFound
			}
		}
		e = entry{bucket: bucket, key: key, value: resp.Message.Data, rev: resp.Message.Sequence, created: resp.Message.Time, op: op}
		return nil
	})
	return e, err
}

// entry is a KV entry read through the stream API.
type entry struct {
	bucket, key string
	value       []byte
	rev         uint64
	created     time.Time
	op          jetstream.KeyValueOp
}

func (e entry) Bucket() string                  { return e.bucket }
func (e entry) Key() string                     { return e.key }
func (e entry) Value() []byte                   { return e.value }
func (e entry) Revision() uint64                { return e.rev }
func (e entry) Created() time.Time              { return e.created }
func (e entry) Delta() uint64                   { return 0 }
func (e entry) Operation() jetstream.KeyValueOp { return e.op }
