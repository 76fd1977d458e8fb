package server

import (
	"net/http"

	"github.com/cairn-dev/cairn/pkg/admit"
)

// Admission bounds the requests the gateway handles at once, per API key
// and overall (pkg/admit): a request over a bound waits a short while for
// room, then is answered 429 with a Retry-After sized from the backlog,
// before its body is read.
type Admission struct {
	// Writes admits the tracking endpoints and REST calls with a body, by
	// requests and body bytes.
	Writes *admit.Controller
	// Reads admits REST reads (GET), by requests.
	Reads *admit.Controller
}

// Controllers lists the controllers set, for metrics and reclaiming memory.
func (a *Admission) Controllers() []*admit.Controller {
	var cs []*admit.Controller
	if a != nil {
		for _, c := range []*admit.Controller{a.Writes, a.Reads} {
			if c != nil {
				cs = append(cs, c)
			}
		}
	}
	return cs
}

// countStep is how many bytes of a body of unknown length are charged at a
// time, before they are read.
const countStep = 32 << 10

// rest admits a REST request of the key keyID: a read by requests, a call
// with a body by requests and its Content-Length (a chunked body is charged
// as it is read). It returns the ticket to release when the request is
// done (nil without a controller).
func (a *Admission) rest(r *http.Request, keyID string) (*admit.Ticket, error) {
	if a == nil {
		return nil, nil
	}
	c, n := a.Writes, max(r.ContentLength, 0)
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		c, n = a.Reads, 0
	}
	if c == nil {
		return nil, nil
	}
	t, err := c.Acquire(r.Context(), keyID, n)
	if err != nil {
		return nil, err
	}
	if c == a.Writes && r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = admit.Body(r.Body, t, 0, countStep)
	}
	return t, nil
}
