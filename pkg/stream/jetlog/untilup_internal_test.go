package jetlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestUntilUp: Open retries what a forming cluster answers (timeouts, no
// responders, 503) until it succeeds or the budget is spent, and gives
// up at once on anything else.
func TestUntilUp(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	unavailable := &jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}
	badConfig := &jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name     string
		errs     []error // answers of successive attempts; nil ends them
		deadline time.Time
		calls    int
		wantErr  error
	}{
		{"first attempt works", []error{nil}, later, 1, nil},
		{"meta leader being elected", []error{fmt.Errorf("create: %w", context.DeadlineExceeded), unavailable, nats.ErrNoResponders, nil}, later, 4, nil},
		{"request timeout", []error{nats.ErrTimeout, nil}, later, 2, nil},
		{"a real refusal is not retried", []error{badConfig, nil}, later, 1, badConfig},
		{"budget spent", []error{nats.ErrTimeout, nats.ErrTimeout}, time.Now(), 1, nats.ErrTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := untilUp(context.Background(), tc.deadline, 0, quiet, "test", func() error {
				calls++
				return tc.errs[min(calls, len(tc.errs))-1]
			})
			if calls != tc.calls {
				t.Errorf("%d attempts, want %d", calls, tc.calls)
			}
			if (tc.wantErr == nil) != (err == nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	t.Run("ctx ended", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		err := untilUp(ctx, later, 0, quiet, "test", func() error {
			calls++
			cancel()
			return nats.ErrTimeout
		})
		if calls != 1 || !errors.Is(err, nats.ErrTimeout) {
			t.Errorf("%d attempts, err %v; want 1 and a timeout", calls, err)
		}
	})
}
