package app

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	routingv1 "github.com/cairn-dev/cairn/gen/cairn/routing/v1"
	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/auth"
	"github.com/cairn-dev/cairn/pkg/clock"
	pstore "github.com/cairn-dev/cairn/pkg/store"
	rserver "github.com/cairn-dev/cairn/services/routing/internal/server"
	"github.com/cairn-dev/cairn/services/routing/internal/store"
)

// txLog is a test Appender that keeps records in a bbolt bucket inside the
// caller's transaction, so it commits (or not) with the state change exactly
// like stream.Log.AppendTx.
type txLog struct{}

func (txLog) AppendTx(tx *pstore.Tx, p uint32, data []byte) (uint64, error) {
	b, err := tx.Bucket("testlog", string(rune('a'+p)))
	if err != nil {
		return 0, err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	return seq, b.Put(pstore.U64(seq), data)
}

// AppendBatchTx implements BatchAppender record by record, so tests cover
// the batched path of the timer loop with the same records.
func (l txLog) AppendBatchTx(tx *pstore.Tx, p uint32, data [][]byte) (uint64, error) {
	var first uint64
	for _, d := range data {
		off, err := l.AppendTx(tx, p, d)
		if err != nil {
			return 0, err
		}
		if first == 0 {
			first = off
		}
	}
	return first, nil
}

// records reads every routing log record, partition by partition.
func records(t *testing.T, db *pstore.DB) []*routingv1.LogRecord {
	t.Helper()
	var out []*routingv1.LogRecord
	err := db.View(func(tx *pstore.Tx) error {
		root, err := tx.Bucket("testlog")
		if err != nil || root == nil {
			return err
		}
		return root.ForEachBucket(func(k []byte) error {
			return root.Bucket(k).ForEach(func(_, v []byte) error {
				r := &routingv1.LogRecord{}
				if err := proto.Unmarshal(v, r); err != nil {
					return err
				}
				out = append(out, r)
				return nil
			})
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// slaEvents returns "kind:owner>new" for an assignment's SLA events in order;
// an event that overtook earlier thresholds reads "kind[passed,...]:owner".
func slaEvents(t *testing.T, db *pstore.DB, assignment string) []string {
	t.Helper()
	var out []string
	for _, r := range records(t, db) {
		if e := r.GetSlaEvent(); e != nil && e.GetAssignmentId() == assignment {
			s := e.GetKind()
			if len(e.GetPassed()) > 0 {
				var passed []string
				for _, p := range e.GetPassed() {
					passed = append(passed, p.GetKind())
				}
				s += "[" + strings.Join(passed, ",") + "]"
			}
			s += ":" + e.GetOwnerId()
			if e.GetNewOwnerId() != "" {
				s += ">" + e.GetNewOwnerId()
			}
			out = append(out, s)
		}
	}
	return out
}

type harness struct {
	t      *testing.T
	path   string
	db     *pstore.DB
	clk    *clock.Manual
	svc    *Service
	reg    *prometheus.Registry
	client routingv1.RoutingServiceClient
	stop   func()
}

// Tokens of the test keyring.
const (
	adminKey   = "admin-token"
	readKey    = "read-token"
	writeKey   = "write-token"
	otherKey   = "other-admin-token"
	serviceKey = "service-token"
)

var keys = auth.StaticKeys{
	adminKey:   {KeyID: "k1", Workspace: "ws", Role: auth.RoleAdmin},
	readKey:    {KeyID: "k2", Workspace: "ws", Role: auth.RoleRead},
	writeKey:   {KeyID: "k3", Workspace: "ws", Role: auth.RoleWrite},
	otherKey:   {KeyID: "k4", Workspace: "other", Role: auth.RoleAdmin},
	serviceKey: {KeyID: "k5", Role: auth.RoleService},
}

// newHarness opens a store at path (a new temp file when empty) and serves
// routing over bufconn with the auth interceptors.
func newHarness(t *testing.T, path string, now time.Time) *harness {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "routing.db")
	}
	db, err := store.OpenDB(path, pstore.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, path: path, db: db, clk: clock.NewManual(now), reg: prometheus.NewRegistry()}
	h.svc, err = New(Options{DB: db, Log: txLog{}, Partitions: 4, Clock: h.clk, Registerer: h.reg})
	if err != nil {
		t.Fatal(err)
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(
		grpc.ChainUnaryInterceptor(auth.UnaryServerInterceptor(keys, rserver.Policy()), apierr.UnaryServerInterceptor(slog.Default())),
		grpc.ChainStreamInterceptor(auth.StreamServerInterceptor(keys, rserver.Policy()), apierr.StreamServerInterceptor(slog.Default())),
	)
	routingv1.RegisterRoutingServiceServer(gs, rserver.NewServer(h.svc, nil, nil))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.client = routingv1.NewRoutingServiceClient(conn)
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			_ = conn.Close()
			gs.Stop()
			wg.Wait()
			if err := db.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
	}
	t.Cleanup(h.stop)
	return h
}

// ctx returns a context carrying a bearer token.
func ctxWith(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// fire runs the timer loop body once at the current manual time.
func (h *harness) fire() int {
	h.t.Helper()
	n, err := h.svc.FireDue(context.Background())
	if err != nil {
		h.t.Fatalf("fire due timers: %v", err)
	}
	return n
}

func (h *harness) assignment(id string) *routingv1.Assignment {
	h.t.Helper()
	r, err := h.client.GetAssignment(ctxWith(readKey), &routingv1.GetAssignmentRequest{AssignmentId: id})
	if err != nil {
		h.t.Fatalf("get assignment %s: %v", id, err)
	}
	return r.GetAssignment()
}
