package stream_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/cairn-dev/cairn/pkg/store"
	"github.com/cairn-dev/cairn/pkg/stream"
)

// Example shows the log-plus-cursor pattern end to end. A producer appends
// events to the partitioned log in its own file; a consumer, with a file of
// its own, counts events per account and saves its cursor in the same
// transaction as each count. A consumer started again later resumes from the
// saved cursor, so every event is counted exactly once.
func Example() {
	dir, err := os.MkdirTemp("", "stream-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	const partitions = 2

	// The producer: a log of two partitions in its bbolt file.
	up, err := store.Open(filepath.Join(dir, "producer.db"), store.Options{SchemaVersion: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer up.Close()
	events, err := stream.OpenLog(up, "events", stream.LogOptions{Partitions: partitions})
	if err != nil {
		log.Fatal(err)
	}
	publish := func(account, event string) {
		p := stream.Partition("acme", account, partitions)
		if _, err := events.Append(context.Background(), p, []byte(account+" "+event)); err != nil {
			log.Fatal(err)
		}
	}

	// The consumer's own file holds its state (bucket "counts") and its cursors.
	down, err := store.Open(filepath.Join(dir, "consumer.db"), store.Options{SchemaVersion: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer down.Close()
	// apply runs inside the transaction that also saves the cursor. It may
	// run more than once (group commit), so it only touches tx.
	apply := func(tx *store.Tx, _ uint32, recs []stream.Record) error {
		counts, err := tx.Bucket("counts")
		if err != nil {
			return err
		}
		for _, r := range recs {
			account, _, _ := strings.Cut(string(r.Data), " ")
			n := store.ParseU64(counts.Get([]byte(account)))
			if err := counts.Put([]byte(account), store.U64(n+1)); err != nil {
				return err
			}
		}
		return nil
	}
	// consume runs a consumer until it has applied everything in the log,
	// then stops it, as a process would on shutdown.
	consume := func() {
		c, err := stream.NewConsumer(stream.ConsumerOptions[stream.Record]{
			Name:       "events",
			DB:         down,
			Source:     stream.LocalSource(events, func(r stream.Record) (stream.Record, error) { return r, nil }),
			Partitions: []uint32{0, 1},
			Offset:     func(r stream.Record) uint64 { return r.Offset },
			Apply:      apply,
			Logger:     slog.New(slog.DiscardHandler),
		})
		if err != nil {
			log.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		for p := range uint32(partitions) {
			if err := c.WaitFor(ctx, p, events.Head(p)); err != nil {
				log.Fatal(err)
			}
		}
		cancel()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
	}
	show := func() {
		err := down.View(func(tx *store.Tx) error {
			counts, err := tx.Bucket("counts")
			if err != nil || counts == nil {
				return err
			}
			var parts []string
			if err := counts.ForEach(func(k, v []byte) error {
				parts = append(parts, fmt.Sprintf("%s=%d", k, store.ParseU64(v)))
				return nil
			}); err != nil {
				return err
			}
			var cursors []string
			for p := range uint32(partitions) {
				cur, err := stream.ReadCursor(tx, "events", p)
				if err != nil {
					return err
				}
				cursors = append(cursors, fmt.Sprintf("p%d@%d", p, cur))
			}
			fmt.Printf("counts %s; cursors %s\n", strings.Join(parts, " "), strings.Join(cursors, " "))
			return nil
		})
		if err != nil {
			log.Fatal(err)
		}
	}

	publish("a1", "signed_up")
	publish("a2", "signed_up")
	publish("a1", "invited_user")
	consume()
	show()

	// More events arrive while the consumer is stopped; a new consumer
	// resumes from the saved cursors and applies only those.
	publish("a2", "invited_user")
	publish("a1", "created_project")
	consume()
	show()

	// Output:
	// counts a1=2 a2=1; cursors p0@1 p1@2
	// counts a1=3 a2=2; cursors p0@2 p1@3
}
