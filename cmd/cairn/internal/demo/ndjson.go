package demo

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
)

// WriteNDJSON writes events as Segment JSON, one object per line. encoding/json
// sorts map keys, so the output is byte-for-byte reproducible.
func WriteNDJSON(w io.Writer, events []Event) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range events {
		if err := enc.Encode(&events[i]); err != nil {
			return fmt.Errorf("encode demo event %d: %w", i, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write demo events: %w", err)
	}
	return nil
}
