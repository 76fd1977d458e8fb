package tracking

import (
	"net/http/httptest"
	"testing"

	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// TestWriteResponseMatchesWriteJSON pins the hand-written fast path to the
// bytes and headers web.WriteJSON produces for the same Response.
func TestWriteResponseMatchesWriteJSON(t *testing.T) {
	tests := []Response{
		{Success: true, Rejected: []Rejection{}},
		{Success: true, Accepted: 100, Rejected: []Rejection{}},
		{Success: true, Accepted: 7, Duplicates: 93, Rejected: []Rejection{}},
		{Success: false, Accepted: 1, Rejected: []Rejection{{Index: 2, MessageID: "m<&>", Field: "event", Reason: "reserved \u2028 name"}}},
	}
	for _, resp := range tests {
		got, want := httptest.NewRecorder(), httptest.NewRecorder()
		writeResponse(got, resp)
		web.WriteJSON(want, 200, resp)
		if got.Code != want.Code || got.Body.String() != want.Body.String() {
			t.Errorf("writeResponse(%+v) = %d %q, WriteJSON %d %q", resp, got.Code, got.Body, want.Code, want.Body)
		}
		for _, h := range []string{"Content-Type", "X-Content-Type-Options"} {
			if got.Header().Get(h) != want.Header().Get(h) {
				t.Errorf("%s = %q, WriteJSON %q", h, got.Header().Get(h), want.Header().Get(h))
			}
		}
	}
}
