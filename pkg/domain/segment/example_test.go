package segment_test

import (
	"fmt"

	"github.com/cairn-dev/cairn/pkg/domain/segment"
)

// A gateway decodes a Segment batch, sends the events that decoded and
// reports the rest against the caller's own numbering.
func ExampleDecodeBatch() {
	body := []byte(`{
	  "writeKey": "wk_123",
	  "context": {"groupId": "acme"},
	  "batch": [
	    {"type": "track", "userId": "u1", "event": "report_created", "messageId": "m1"},
	    {"type": "track", "userId": "u1", "event": "x", "timestamp": "last tuesday"},
	    {"type": "identify", "anonymousId": "a1", "traits": {"plan": "pro"}}
	  ]}`)
	b, err := segment.DecodeBatch(body)
	if err != nil {
		fmt.Println("unusable body:", err)
		return
	}
	fmt.Println("write key:", b.WriteKey)
	for i, ev := range b.Events {
		fmt.Printf("batch[%d]: %s %s account=%s\n", b.Indexes[i], segment.TypeName(ev.GetType()), ev.GetEvent(),
			ev.GetContext().GetFields()["groupId"].GetStringValue())
	}
	for _, e := range b.Errors {
		fmt.Println("rejected:", e)
	}
	// Output:
	// write key: wk_123
	// batch[0]: track report_created account=acme
	// batch[2]: identify  account=acme
	// rejected: batch[1].timestamp: not RFC 3339
}

// The CLI decodes one NDJSON line at a time; the type comes from the line.
func ExampleDecodeCall() {
	ev, err := segment.DecodeCall("", []byte(`{"type":"group","userId":"u1","groupId":"acme","traits":{"name":"Acme"}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	out, _ := segment.Encode(ev)
	fmt.Println(string(out))
	_, err = segment.DecodeCall("track", []byte(`{"userId":"u1","sentAt":42}`))
	fmt.Println(err)
	// Output:
	// {"groupId":"acme","traits":{"name":"Acme"},"type":"group","userId":"u1"}
	// sentAt: not a string
}
