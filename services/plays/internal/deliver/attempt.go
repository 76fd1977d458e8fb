package deliver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const userAgent = "cairn-plays/1"

// snippetBytes of an error response go into LastError, enough for a
// receiver's reason without storing its page.
const snippetBytes = 200

type resultClass int

const (
	resultOK resultClass = iota
	resultRetry
	resultDead
)

type result struct {
	class         resultClass
	status        int
	err           string
	retryAfter    time.Duration
	hasRetryAfter bool
}

// send makes one attempt. It never returns an error value: every failure is
// classified, because the caller only needs to know what to do next.
func (e *Engine) send(ctx context.Context, cfg *config, msg Message, at time.Time) result {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL, bytes.NewReader(msg.Body))
	if err != nil {
		// Validated when configured, so this is not expected; retrying lets
		// a corrected destination take the message.
		return result{class: resultRetry, err: "building request: " + describe(err)}
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", userAgent)
	if cfg.Kind == Webhook {
		h.Set("webhook-id", msg.ID)
		h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
		h.Set("webhook-signature", sign(cfg.key, msg.ID, at, msg.Body))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return result{class: resultRetry, err: fmt.Sprintf("timeout after %s", cfg.Timeout)}
		}
		return result{class: resultRetry, err: describe(err)}
	}
	// Read (at most MaxResponseBytes of) the body so the connection can be
	// reused; a receiver cannot make us read more than that, and a failure
	// while reading does not undo the status it already sent.
	var snippet bytes.Buffer
	body := io.LimitReader(resp.Body, e.o.MaxResponseBytes)
	_, _ = io.CopyN(&snippet, body, snippetBytes)
	_, _ = io.Copy(io.Discard, body)
	_ = resp.Body.Close()

	r := result{status: resp.StatusCode}
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		r.class = resultOK
		return r
	case code >= 300 && code < 400:
		r.class = resultRetry
		r.err = fmt.Sprintf("HTTP %d: redirect not followed; configure the final URL", code)
		return r
	case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooEarly,
		code == http.StatusTooManyRequests, code >= 500:
		r.class = resultRetry
	case code >= 400:
		r.class = resultDead
	default: // 1xx that net/http did not consume, or nonsense
		r.class = resultRetry
	}
	r.err = statusError(code, snippet.Bytes())
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		r.retryAfter, r.hasRetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), e.clock.Now())
	}
	return r
}

func statusError(code int, body []byte) string {
	s := fmt.Sprintf("HTTP %d", code)
	if t := http.StatusText(code); t != "" {
		s += " " + t
	}
	if b := printable(body); b != "" {
		s += ": " + b
	}
	return s
}

// printable keeps a response snippet safe to log and store: valid UTF-8,
// no control characters, trimmed.
func printable(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		b = b[n:]
		switch {
		case r == utf8.RuneError && n <= 1:
			sb.WriteRune('?')
		case unicode.IsControl(r):
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(sb.String()), " ")
}

// describe drops the request URL that net/http puts in its errors: a
// Slack URL is itself the secret, and errors end up in logs and stats.
func describe(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// parseRetryAfter reads delay-seconds or an HTTP-date. A value in the past
// is a zero delay; an unreadable one is ignored.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseUint(v, 10, 64); err == nil {
		const maxSecs = uint64(1<<63-1) / uint64(time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}
