package codectest_test

import (
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	"github.com/cairn-dev/cairn/pkg/store/codectest"
)

// TestFillRoundTrips: whatever Fill makes, protobuf itself round-trips, and
// over a few hundred messages every field gets set.
func TestFillRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	set := map[protoreflect.Name]bool{}
	for range 500 {
		m := &commonv1.Signal{}
		codectest.Fill(r, m.ProtoReflect(), 2)
		codectest.Unknown(r, m.ProtoReflect())
		m.ProtoReflect().Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool { set[f.Name()] = true; return true })
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var got commonv1.Signal
		if err := proto.Unmarshal(b, &got); err != nil || !proto.Equal(&got, m) {
			t.Fatalf("round trip: %v\n got %v\nwant %v", err, &got, m)
		}
	}
	fields := (&commonv1.Signal{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		if !set[fields.Get(i).Name()] {
			t.Errorf("Fill never set %s", fields.Get(i).Name())
		}
	}
}

type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) { r.errs = append(r.errs, format) }
func (r *recorder) Helper()                           {}

func TestCheckFields(t *testing.T) {
	sig := codectest.Known{
		"cairn.common.v1.Signal":                 {1, 2, 3, 4, 5, 6, 7, 8, 9, 10},
		"cairn.common.v1.Signal.AttributesEntry": {1, 2},
		"google.protobuf.Timestamp":              {1, 2},
	}
	tests := []struct {
		name  string
		known codectest.Known
		roots []proto.Message
		fails string // substring of the failure; "" for none
	}{
		{name: "complete", known: sig, roots: []proto.Message{&commonv1.Signal{}}},
		{name: "a field the codec does not know", known: with(sig, "cairn.common.v1.Signal", []protowire.Number{1, 2, 3, 4, 5, 6, 7, 8, 9}), roots: []proto.Message{&commonv1.Signal{}}, fails: "has fields"},
		{name: "a nested message not declared", known: without(sig, "google.protobuf.Timestamp"), roots: []proto.Message{&commonv1.Signal{}}, fails: "declares no fields"},
		{name: "a stale entry", known: with(sig, "google.protobuf.Struct", []protowire.Number{1}), roots: []proto.Message{&commonv1.Signal{}}, fails: "none of its messages"},
		{name: "two roots", known: with(sig, "google.protobuf.Struct", []protowire.Number{1}), roots: []proto.Message{&commonv1.Signal{}, &structpb.Struct{}, &timestamppb.Timestamp{}}, fails: "declares no fields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{TB: t}
			codectest.CheckFields(rec, tc.known, tc.roots...)
			got := strings.Join(rec.errs, "\n")
			if tc.fails == "" && got != "" || tc.fails != "" && !strings.Contains(got, tc.fails) {
				t.Errorf("failures %q, want one containing %q", got, tc.fails)
			}
		})
	}
}

func with(k codectest.Known, name protoreflect.FullName, nums []protowire.Number) codectest.Known {
	out := codectest.Known{}
	for n, v := range k {
		out[n] = v
	}
	out[name] = nums
	return out
}

func without(k codectest.Known, name protoreflect.FullName) codectest.Known {
	out := with(k, name, nil)
	delete(out, name)
	return out
}
