package tracking

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/admit"
	"github.com/cairn-dev/cairn/pkg/domain/segment"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// Handler serves the tracking endpoints.
type Handler struct {
	// Ingestion receives the decoded events.
	Ingestion ingestionv1.IngestionServiceClient
	// Auth checks write keys before anything is decoded or forwarded.
	Auth web.Authenticator
	// Limiter applies per-key rate limits; nil means unlimited.
	Limiter *web.RateLimiter
	// Admission bounds the requests and body bytes handled at once, per
	// key and overall, before a body is read (see admit.go); nil means
	// unbounded.
	Admission *admit.Controller
	// MaxInflated caps gzip-encoded bodies after inflation; 0 means 4 MiB.
	MaxInflated int64
	// Coalescer, when set, merges small requests of one key into shared
	// Ingest calls while ingestion is busy (see Coalescer).
	Coalescer *Coalescer
}

// defaultMaxInflated is large enough for Segment's 500 KB batch limit even
// with generous JSON whitespace.
const defaultMaxInflated = 4 << 20

// Rejection reports one event that was not stored.
type Rejection struct {
	// Index of the event in the request's batch (0 for single calls).
	Index int `json:"index"`
	// MessageID of the event, when known.
	MessageID string `json:"messageId,omitempty"`
	// Field is the offending field, relative to the event.
	Field string `json:"field,omitempty"`
	// Reason says why.
	Reason string `json:"reason"`
}

// Response is the body of a 200 answer. Unlike Segment, it says which events
// were rejected; the status stays 200 for partial acceptance because SDKs
// retry anything else.
type Response struct {
	// Success is true when no event was rejected.
	Success bool `json:"success"`
	// Accepted counts events newly logged.
	Accepted int `json:"accepted"`
	// Duplicates counts events already logged under the same messageId.
	Duplicates int `json:"duplicates"`
	// Rejected lists events that were not logged and why.
	Rejected []Rejection `json:"rejected"`
}

// Paths lists the last element of every tracking path (/v1/<name>), for
// CORS preflight registration.
func Paths() []string {
	return []string{"track", "identify", "group", "page", "screen", "alias", "batch", "import", "t", "i", "g", "p", "s", "a", "b"}
}

// Register adds the tracking routes to mux. Besides Segment's documented
// paths it serves the one-letter ones analytics.js posts to (/v1/t, /v1/p,
// ..., /v1/b for batches), so a browser SDK needs only a new host.
func (h *Handler) Register(mux *http.ServeMux) {
	for _, typ := range []string{"track", "identify", "group", "page", "screen", "alias"} {
		decode := func(body []byte) (Decoded, error) { return DecodeCall(typ, body) }
		mux.Handle("POST /v1/"+typ, h.route("/v1/"+typ, decode))
		short := "/v1/" + typ[:1]
		mux.Handle("POST "+short, h.route(short, decode))
	}
	for _, p := range []string{"/v1/batch", "/v1/import", "/v1/b"} {
		mux.Handle("POST "+p, h.route(p, DecodeBatch))
	}
}

// route wraps one endpoint. Tracking is called from browsers on any site
// (analytics.js), so like Segment it allows every origin; the write key, not
// the origin, is the credential.
func (h *Handler) route(name string, decode func([]byte) (Decoded, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.SetRoute(r.Context(), name)
		if o := r.Header.Get("Origin"); o != "" {
			web.SetCORSHeaders(w, o)
		}
		h.serve(w, r, decode)
	})
}

// Preflight answers CORS preflight requests for the tracking routes.
func Preflight(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" {
		web.SetCORSHeaders(w, o)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, decode func([]byte) (Decoded, error)) {
	// A key in a header is checked, and the request admitted, before the
	// body is read: a refused request costs no buffer.
	token, fromHeader := headerKey(r)
	var (
		key web.Key
		err error
	)
	if fromHeader {
		if key, err = h.authenticate(token); err != nil {
			web.WriteError(w, r, err)
			return
		}
	}
	ticket, err := h.admit(r, key.ID)
	if err != nil {
		web.WriteError(w, r, err)
		return
	}
	defer ticket.Release()
	buf := getBuffer()
	body, err := h.readBody(r, buf, ticket)
	if err != nil {
		putBuffer(buf)
		if !web.TooLarge(err) && status.Code(err) != codes.ResourceExhausted {
			err = web.FieldError("body", "could not be read: "+err.Error())
		}
		web.WriteError(w, r, err)
		return
	}
	// The decoders keep nothing of body, so its buffer serves the next request.
	d, err := decode(body)
	putBuffer(buf)
	if err != nil {
		web.WriteError(w, r, unparseable(err))
		return
	}
	if !fromHeader {
		token = d.WriteKey
		if key, err = h.authenticate(token); err != nil {
			web.WriteError(w, r, err)
			return
		}
	}
	if ok, wait := h.Limiter.Allow(key.ID); !ok {
		web.WriteError(w, r, web.RateLimited(wait))
		return
	}
	resp := Response{Rejected: []Rejection{}}
	for _, p := range d.Problems {
		resp.Rejected = append(resp.Rejected, Rejection{Index: p.Index, Field: p.Field, Reason: p.Reason})
	}
	if len(d.Events) > 0 {
		var out *ingestionv1.IngestResponse
		if h.Coalescer != nil {
			out, err = h.Coalescer.Ingest(outgoing(r.Context(), token), key.ID, d.Events)
		} else {
			out, err = h.Ingestion.Ingest(outgoing(r.Context(), token), &ingestionv1.IngestRequest{Events: d.Events})
		}
		if err != nil {
			web.WriteError(w, r, err)
			return
		}
		resp.Accepted, resp.Duplicates = int(out.GetAccepted()), int(out.GetDuplicates())
		for _, res := range out.GetResults() {
			if res.GetStatus() != ingestionv1.EventStatus_EVENT_STATUS_REJECTED {
				continue
			}
			i := int(res.GetIndex())
			if i < 0 || i >= len(d.Index) {
				continue
			}
			resp.Rejected = append(resp.Rejected, Rejection{
				Index: d.Index[i], MessageID: res.GetMessageId(),
				Field: relativeField(res.GetField(), int(res.GetIndex())), Reason: res.GetReason(),
			})
		}
	}
	sortRejections(resp.Rejected)
	resp.Success = len(resp.Rejected) == 0
	writeResponse(w, resp)
}

// writeResponse writes resp as web.WriteJSON would. The common answer, every
// event taken, is formatted by hand: reflection-based encoding showed up in
// the /v1/batch profile.
func writeResponse(w http.ResponseWriter, resp Response) {
	if len(resp.Rejected) > 0 {
		web.WriteJSON(w, http.StatusOK, resp)
		return
	}
	b := make([]byte, 0, 80)
	b = append(b, `{"success":`...)
	b = strconv.AppendBool(b, resp.Success)
	b = append(b, `,"accepted":`...)
	b = strconv.AppendInt(b, int64(resp.Accepted), 10)
	b = append(b, `,"duplicates":`...)
	b = strconv.AppendInt(b, int64(resp.Duplicates), 10)
	b = append(b, ",\"rejected\":[]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// readBody reads the request body into buf, inflating it when the client
// sent Content-Encoding: gzip (RudderStack's and several Segment SDKs do). The
// inflated size is capped too, so a small compressed body cannot expand
// without bound. Bytes beyond those admitted with t (a chunked body, the
// inflated body) are charged to t as they are read (counted). The result
// aliases buf.
func (h *Handler) readBody(r *http.Request, buf *bytes.Buffer, t *admit.Ticket) ([]byte, error) {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		if _, err := buf.ReadFrom(counted(r.Body, t, r.ContentLength)); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	case "gzip":
		zr, err := getGzip(r.Body)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer gzipPool.Put(zr)
		limit := h.MaxInflated
		if limit <= 0 {
			limit = defaultMaxInflated
		}
		if _, err := buf.ReadFrom(io.LimitReader(counted(zr, t, -1), limit+1)); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if int64(buf.Len()) > limit {
			return nil, fmt.Errorf("inflate body beyond %d bytes: %w", limit, web.ErrTooLarge)
		}
		return buf.Bytes(), nil
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", truncate(enc, 20))
	}
}

// Request bodies and gzip readers are pooled: a 100-event batch is ~17 KB,
// and growing a fresh buffer to that size for every request showed up in the
// /v1/batch allocation profile.
var (
	bufferPool sync.Pool // *bytes.Buffer
	gzipPool   sync.Pool // *gzip.Reader
)

// maxPooledBuffer keeps the occasional huge body from pinning memory.
const maxPooledBuffer = 1 << 20

func getBuffer() *bytes.Buffer {
	if b, ok := bufferPool.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	bufferPool.Put(b)
}

func getGzip(r io.Reader) (*gzip.Reader, error) {
	if zr, ok := gzipPool.Get().(*gzip.Reader); ok {
		if err := zr.Reset(r); err != nil {
			gzipPool.Put(zr)
			return nil, err
		}
		return zr, nil
	}
	return gzip.NewReader(r)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func (h *Handler) authenticate(token string) (web.Key, error) {
	if token == "" {
		return web.Key{}, status.Error(codes.Unauthenticated, "missing write key: send it as the HTTP Basic user, as a Bearer token or as writeKey in the body")
	}
	key, err := h.Auth.Authenticate(token)
	if err != nil {
		return web.Key{}, status.Error(codes.Unauthenticated, "write key not recognized")
	}
	if !key.CanWrite {
		return web.Key{}, status.Error(codes.PermissionDenied, "this key may not send events; use a write key")
	}
	return key, nil
}

// headerKey reads the write key from Basic auth (Segment's writeKey as user,
// empty password) or from a Bearer token.
func headerKey(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	if tok, ok := web.BearerToken(h); ok {
		return tok, true
	}
	const basic = "basic "
	if len(h) > len(basic) && strings.EqualFold(h[:len(basic)], basic) {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(basic):]))
		if err != nil {
			return "", true
		}
		user, _, _ := strings.Cut(string(raw), ":")
		return user, true
	}
	return "", true
}

// outgoing forwards the caller's key, so ingestion applies its own auth and
// workspace resolution, plus the request and trace ids.
func outgoing(ctx context.Context, token string) context.Context {
	md := metadata.Pairs("authorization", "Bearer "+token)
	if id := web.RequestID(ctx); id != "" {
		md.Set("x-request-id", id)
	}
	if t, ok := web.TraceFrom(ctx); ok {
		md.Set("traceparent", t.Traceparent())
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// relativeField strips the "events[i]." prefix ingestion puts on field paths:
// the rejection already carries the index in the caller's own batch.
func relativeField(field string, i int) string {
	prefix := fmt.Sprintf("events[%d]", i)
	if rest, ok := strings.CutPrefix(field, prefix); ok {
		return strings.TrimPrefix(rest, ".")
	}
	return field
}

func sortRejections(rs []Rejection) {
	slices.SortStableFunc(rs, func(a, b Rejection) int { return cmp.Compare(a.Index, b.Index) })
}

// unparseable is the 400 for a body the decoder refused, naming the field
// where it stopped ("body" for the document as a whole).
func unparseable(err error) error {
	field := "body"
	var fe *segment.FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		field = fe.Field
	}
	st := status.New(codes.InvalidArgument, err.Error())
	if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: strings.TrimPrefix(err.Error(), ErrUnparseable.Error()+": ")},
	}}); derr == nil {
		st = d
	}
	return st.Err()
}
