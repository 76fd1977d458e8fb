package server

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// LogSubscriber serves the routing log l: it decodes each record and fills
// in its offset and partition. Errors for offsets out of range map to
// OutOfRange (apierr).
func LogSubscriber(l *stream.Log) Subscriber {
	return func(ctx context.Context, p uint32, from uint64, send func([]*routingv1.LogRecord, uint64) error) error {
		err := l.Serve(ctx, p, from, func(recs []stream.Record, head uint64) error {
			out := make([]*routingv1.LogRecord, 0, len(recs))
			for _, r := range recs {
				m := &routingv1.LogRecord{}
				if err := proto.Unmarshal(r.Data, m); err != nil {
					return fmt.Errorf("decode routing log record %d/%d: %w", r.Partition, r.Offset, err)
				}
				m.Offset, m.Partition = r.Offset, r.Partition
				out = append(out, m)
			}
			return send(out, head)
		})
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
}
