package store_test

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/store"
)

// TestUnmarshalMatchesRuntime: a stored record decodes to the same message
// with the generated decoder as with proto.Unmarshal, replacing what m held
// (not merging into it), and a message without generated code still decodes.
func TestUnmarshalMatchesRuntime(t *testing.T) {
	props, err := structpb.NewStruct(map[string]any{"plan": "pro", "seats": 12.0, "tags": []any{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	want := &ingestionv1.Event{Workspace: "w", MessageId: "m1", Event: "report_created", AccountId: "acme", Properties: props, Flags: []string{"late"}}
	raw, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := &ingestionv1.Event{Flags: []string{"left over"}, UserId: "stale"}
	if err := store.Unmarshal(raw, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	w := wrapperspb.String("x")
	rw, _ := proto.Marshal(w)
	var gw wrapperspb.StringValue
	if err := store.Unmarshal(rw, &gw); err != nil || gw.GetValue() != "x" {
		t.Fatalf("a message without generated code: %v %q", err, gw.GetValue())
	}
}
