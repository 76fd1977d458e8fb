package tracking

import (
	"io"
	"net/http"

	"github.com/cairn-dev/cairn/pkg/admit"
)

// countStep is how many bytes of a body of unknown length are charged to
// the admission ticket at a time, before they are read.
const countStep = 32 << 10

// admit charges a tracking request against h.Admission before its body is
// read: one request and its Content-Length (a chunked body is charged as it
// is read), for keyID and overall. A key sent in the body is not known yet,
// so such a request counts against the overall bounds only. It waits a
// short while for room, then sheds: ResourceExhausted with a RetryInfo,
// which web.WriteError answers with 429 and Retry-After. Without a
// controller every request is admitted, with a nil ticket.
func (h *Handler) admit(r *http.Request, keyID string) (*admit.Ticket, error) {
	if h.Admission == nil {
		return nil, nil
	}
	return h.Admission.Acquire(r.Context(), keyID, max(r.ContentLength, 0))
}

// counted returns r, charging what is read of it to t when its length was
// not admitted up front (length < 0).
func counted(r io.Reader, t *admit.Ticket, length int64) io.Reader {
	if t == nil || length >= 0 {
		return r
	}
	return admit.Body(io.NopCloser(r), t, 0, countStep)
}
