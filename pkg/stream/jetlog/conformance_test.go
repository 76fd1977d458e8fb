package jetlog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-dev/cairn/pkg/stream"
	"github.com/cairn-dev/cairn/pkg/stream/conformance"
	"github.com/cairn-dev/cairn/pkg/stream/jetlog"
	"github.com/cairn-dev/cairn/pkg/stream/jetlog/jettest"
)

// TestConformance runs the backend conformance suite against R3 streams on
// an in-process 3-node cluster on loopback.
func TestConformance(t *testing.T) {
	c := jettest.Start(t, 3)
	conns := map[stream.Backend]*nats.Conn{}
	conformance.Run(t, conformance.Harness{
		Open: func(t *testing.T, name string, partitions uint32, retention bool) stream.Backend {
			nc := c.Connect(t)
			opts := jetlog.Options{Name: logName(t, name), Partitions: partitions, Replicas: 3, Timeout: 20 * time.Second}
			if retention {
				opts.MaxAge = time.Hour
			}
			l, err := jetlog.Open(context.Background(), nc, opts)
			if err != nil {
				t.Fatal(err)
			}
			conns[l] = nc
			return l
		},
		Close: func(t *testing.T, b stream.Backend) { conns[b].Close() },
		Compact: func(t *testing.T, b stream.Backend) {
			js, err := jetstream.New(conns[b])
			if err != nil {
				t.Fatal(err)
			}
			l := b.(*jetlog.Log)
			ctx := context.Background()
			for p := range l.Partitions() {
				st, err := js.Stream(ctx, l.Stream(p))
				if err != nil {
					t.Fatal(err)
				}
				if err := st.Purge(ctx); err != nil {
					t.Fatal(err)
				}
			}
		},
		SecondWriter: true,
		Fenced:       stream.ErrFenced,
	})
}

// logName makes a log name unique to the test.
func logName(t *testing.T, name string) string {
	r := strings.NewReplacer("/", "_", " ", "_")
	return fmt.Sprintf("%s_%s", r.Replace(t.Name()), name)
}
