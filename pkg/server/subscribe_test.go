package server

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-dev/cairn/pkg/auth"
)

// keyStream is a server stream whose context carries an API key.
type keyStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (k keyStream) Context() context.Context { return k.ctx }

// TestSubscribeAdmission: Subscribe streams are bounded per key and
// overall; past a bound a new one is refused at once with
// ResourceExhausted and a retry delay; other streams are not counted; a
// stream that ends makes room.
func TestSubscribeAdmission(t *testing.T) {
	s := newTestServer(t, Config{MaxSubscribers: 3, MaxSubscribersPerKey: 2})
	sub := &grpc.StreamServerInfo{FullMethod: "/cairn.stages.v1.StagesService/Subscribe"}
	stream := func(key string) grpc.ServerStream {
		return keyStream{ctx: auth.NewContext(context.Background(), auth.Principal{KeyID: key})}
	}
	release := make(chan struct{})
	started := make(chan struct{}, 8)
	hold := func(any, grpc.ServerStream) error {
		started <- struct{}{}
		<-release
		return nil
	}
	var wg sync.WaitGroup
	open := func(key string) {
		wg.Go(func() {
			if err := s.admitSubscribe(nil, stream(key), sub, hold); err != nil {
				t.Errorf("stream for %s: %v", key, err)
			}
		})
		<-started
	}
	refused := func(key, why string) {
		t.Helper()
		err := s.admitSubscribe(nil, stream(key), sub, hold)
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			t.Fatalf("%s: %v, want ResourceExhausted", why, err)
		}
		var retry bool
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() > 0 {
				retry = true
			}
		}
		if !retry {
			t.Errorf("%s: no retry delay in %v", why, st.Details())
		}
	}
	open("a")
	open("a")
	refused("a", "a third stream for one key")
	open("b")
	refused("c", "a fourth stream overall")
	if err := s.admitSubscribe(nil, stream("a"), &grpc.StreamServerInfo{FullMethod: "/cairn.ingestion.v1.IngestionService/IngestStream"},
		func(any, grpc.ServerStream) error { return nil }); err != nil {
		t.Errorf("a stream that is not Subscribe was bounded: %v", err)
	}
	close(release)
	wg.Wait()
	done := func(any, grpc.ServerStream) error { return nil }
	if err := s.admitSubscribe(nil, stream("a"), sub, done); err != nil {
		t.Errorf("after the streams ended: %v, want room again", err)
	}
}
