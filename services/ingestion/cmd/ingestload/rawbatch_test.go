package main

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
)

// TestRawBatchPatchesAccounts: a patched raw batch names the message ids,
// users and accounts of its own sequence numbers, so that load spreads
// over -accounts accounts rather than one batch's worth.
func TestRawBatchPatchesAccounts(t *testing.T) {
	const batch, accounts = 4, 7
	req := &ingestionv1.IngestRequest{Workspace: "w"}
	for i := range batch {
		c, _ := structpb.NewStruct(map[string]any{"groupId": fmt.Sprintf("acct-%0*d", seqWidth, i%accounts)})
		req.Events = append(req.Events, &ingestionv1.Event{MessageId: fmt.Sprintf("run-%0*d", seqWidth, i), UserId: fmt.Sprintf("user-%0*d", seqWidth, i%(accounts*5)), Context: c})
	}
	r := newRawBatch(req, "run", accounts)
	for _, first := range []int64{0, 4, 40, 1 << 40} {
		r.patch(first)
		var got ingestionv1.IngestRequest
		if err := proto.Unmarshal(r.b, &got); err != nil {
			t.Fatal(err)
		}
		for i, ev := range got.GetEvents() {
			seq := first + int64(i)
			want := [3]string{fmt.Sprintf("run-%0*d", seqWidth, seq), fmt.Sprintf("user-%0*d", seqWidth, seq%(accounts*5)), fmt.Sprintf("acct-%0*d", seqWidth, seq%accounts)}
			have := [3]string{ev.GetMessageId(), ev.GetUserId(), ev.GetContext().GetFields()["groupId"].GetStringValue()}
			if have != want {
				t.Errorf("batch at %d, event %d: %q, want %q", first, i, have, want)
			}
		}
	}
}
