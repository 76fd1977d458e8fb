package server

import (
	"bytes"
	stdgzip "compress/gzip"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // as in the services (telemetry's exporter registers it)
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/auth"
)

// rawCall is one gRPC call as bytes on an HTTP/2 stream: its headers and
// its length-prefixed messages, written by hand so that a test can send
// what no gRPC client would (a payload flagged gzip that is not gzip).
type rawCall struct {
	method   string
	encoding string   // grpc-encoding; "" for none
	frames   [][]byte // whole frames, from frame
}

// frame is one length-prefixed message: flag 1 says compressed.
func frame(compressed bool, payload []byte) []byte {
	b := make([]byte, 5, 5+len(payload))
	if compressed {
		b[0] = 1
	}
	binary.BigEndian.PutUint32(b[1:], uint32(len(payload)))
	return append(b, payload...)
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := stdgzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// h2c is an HTTP/2 client over plaintext TCP, as gRPC speaks on loopback.
func h2c() *http.Client {
	return &http.Client{Transport: &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

// do sends c to addr with token and returns the call's grpc-status and
// grpc-message (from the trailers, or the headers of a trailers-only
// answer).
func (c rawCall) do(t *testing.T, client *http.Client, addr, token string) (codes.Code, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", "http://"+addr+c.method, bytes.NewReader(bytes.Join(c.frames, nil)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	req.Header.Set("authorization", "Bearer "+token)
	if c.encoding != "" {
		req.Header.Set("grpc-encoding", c.encoding)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	h := resp.Trailer
	if h.Get("grpc-status") == "" {
		h = resp.Header
	}
	n, err := strconv.Atoi(h.Get("grpc-status"))
	if err != nil {
		t.Fatalf("no grpc-status: headers %v, trailers %v", resp.Header, resp.Trailer)
	}
	msg, _ := url.PathUnescape(h.Get("grpc-message"))
	return codes.Code(n), msg
}

// wireServer starts a server built with New serving the decode test
// service (a unary Ingest and a streaming Watch) to the read key, and
// returns it, the count of requests that reached a handler, an h2c client
// and a valid encoded IngestRequest.
func wireServer(t *testing.T) (*Server, *int, *http.Client, []byte) {
	t.Helper()
	reached := new(int)
	s, err := New(Config{Name: "test", GRPCAddr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler)},
		auth.Policy{
			"/" + decodeService + "/Ingest": auth.RoleRead,
			"/" + decodeService + "/Watch":  auth.RoleRead,
		}, testKeys)
	if err != nil {
		t.Fatal(err)
	}
	desc := decodeDesc(reached)
	s.GRPC.RegisterService(&desc, nil)
	runServer(t, s)
	valid, err := proto.Marshal(&ingestionv1.IngestRequest{Events: []*ingestionv1.Event{{UserId: "u", Event: "e"}}})
	if err != nil {
		t.Fatal(err)
	}
	return s, reached, h2c(), valid
}

// TestMalformedWire sends malformed requests as raw HTTP/2 to a server
// built with New: a payload flagged gzip that is not gzip (or whose gzip
// stream is cut short or corrupt), and malformed protobuf, plain or
// gzipped, to a unary and a streaming method. Each is the client's error,
// InvalidArgument saying what was wrong, and reaches no handler.
func TestMalformedWire(t *testing.T) {
	s, reached, client, valid := wireServer(t)
	gz := gzipped(t, valid)
	corrupt := bytes.Clone(gz)
	corrupt[len(corrupt)-5] ^= 0xff // the CRC-32 no longer matches
	badUTF8 := ingestWith(t, structWith("plan", stringValue("pro\xff")))
	tests := []struct {
		name     string
		encoding string
		frame    []byte
		code     codes.Code
		msg      string
	}{
		{"valid", "", frame(false, valid), codes.OK, ""},
		{"valid gzip", "gzip", frame(true, gz), codes.OK, ""},
		{"gzip flag, payload not gzip", "gzip", frame(true, []byte("this is not gzip at all")), codes.InvalidArgument, "not valid gzip"},
		{"gzip flag, empty payload", "gzip", frame(true, nil), codes.InvalidArgument, "not valid gzip"},
		{"gzip cut short", "gzip", frame(true, gz[:len(gz)/2]), codes.InvalidArgument, "not valid gzip"},
		{"gzip checksum wrong", "gzip", frame(true, corrupt), codes.InvalidArgument, "not valid gzip"},
		{"gzip of invalid UTF-8", "gzip", frame(true, gzipped(t, badUTF8)), codes.InvalidArgument, "events[1].properties.plan: not valid UTF-8"},
		{"gzip of a 20,000-deep Struct", "gzip", frame(true, gzipped(t, ingestWith(t, deepStruct(20000)))), codes.InvalidArgument, "nested more than 10000 levels deep"},
		{"truncated protobuf", "", frame(false, valid[:len(valid)-3]), codes.InvalidArgument, "truncated"},
		{"random bytes", "", frame(false, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), codes.InvalidArgument, "malformed field tag"},
		{"invalid UTF-8", "", frame(false, badUTF8), codes.InvalidArgument, "not valid UTF-8"},
	}
	for _, m := range []string{"Ingest", "Watch"} {
		for _, tc := range tests {
			t.Run(m+"/"+tc.name, func(t *testing.T) {
				before := *reached
				c := rawCall{method: "/" + decodeService + "/" + m, encoding: tc.encoding, frames: [][]byte{tc.frame}}
				code, msg := c.do(t, client, s.Addr().String(), readToken)
				if code != tc.code || !strings.Contains(msg, tc.msg) {
					t.Fatalf("%v %q, want %v with %q", code, msg, tc.code, tc.msg)
				}
				if code != codes.OK && *reached != before {
					t.Fatal("the handler saw a malformed request")
				}
			})
		}
	}
}

// TestMalformedFrames sends length-prefixed frames that grpc-go's own
// reader refuses before any codec or interceptor runs: a message flagged
// compressed in a call with no (or identity) grpc-encoding, a flag byte
// that is neither 0 nor 1, and a stream that ends inside a message or its
// length prefix. They are the client's faults, but grpc-go answers Internal
// and writes that status itself before RecvMsg returns, so no Cairn hook can
// make them InvalidArgument (docs/reliability.md, "Malformed frames", gives
// the grpc-go lines). This test pins that behaviour, and that no handler
// sees such a request: should a grpc-go upgrade change the codes, it fails
// and the documentation needs updating.
func TestMalformedFrames(t *testing.T) {
	s, reached, client, valid := wireServer(t)
	flag2 := frame(false, valid)
	flag2[0] = 2
	whole := frame(false, valid)
	tests := []struct {
		name     string
		encoding string
		frame    []byte
		msg      string
	}{
		{"compressed flag, no grpc-encoding", "", frame(true, valid), "compressed flag set with identity or empty encoding"},
		{"compressed flag, identity encoding", "identity", frame(true, valid), "compressed flag set with identity or empty encoding"},
		{"flag byte 2", "", flag2, "unexpected payload format 2"},
		{"stream ends inside the message", "", whole[:len(whole)-3], "unexpected EOF"},
		{"stream ends inside the length prefix", "", whole[:3], "unexpected EOF"},
	}
	for _, tc := range tests {
		for _, m := range []string{"Ingest", "Watch"} {
			t.Run(m+"/"+tc.name, func(t *testing.T) {
				before := *reached
				c := rawCall{method: "/" + decodeService + "/" + m, encoding: tc.encoding, frames: [][]byte{tc.frame}}
				code, msg := c.do(t, client, s.Addr().String(), readToken)
				if code != codes.Internal || !strings.Contains(msg, tc.msg) {
					t.Fatalf("%v %q, want grpc-go's Internal with %q", code, msg, tc.msg)
				}
				if *reached != before {
					t.Fatal("the handler saw a malformed request")
				}
			})
		}
	}
}

// decompressAll runs b through the registered gzip compressor as grpc-go
// does, and returns the payload the codecs then see, split into buffers of
// at most split bytes (as grpc-go's pooled reads may split it).
func decompressAll(t testing.TB, b []byte, split int) mem.BufferSlice {
	t.Helper()
	r, err := encoding.GetCompressor("gzip").Decompress(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Decompress = %v, want nil (faults travel in the payload)", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read = %v, want nil", err)
	}
	if c, ok := r.(io.Closer); ok {
		_ = c.Close()
	}
	var bs mem.BufferSlice
	for len(out) > split {
		bs, out = append(bs, mem.SliceBuffer(out[:split])), out[split:]
	}
	return append(bs, mem.SliceBuffer(out))
}

// TestGzipFaults checks both codecs on what checkedGzip hands them: the
// servers' codec marks a fault as InvalidArgument and decodes valid gzip
// as usual; the process-wide codec (clients, bare servers) fails on a
// fault however the payload is split into buffers, and decodes valid gzip.
func TestGzipFaults(t *testing.T) {
	in := &ingestionv1.IngestRequest{Workspace: "w", Events: []*ingestionv1.Event{{UserId: "u", Event: "e"}}}
	valid, err := proto.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	gz := gzipped(t, valid)
	for _, split := range []int{1, 3, 7, 1 << 20} {
		for _, tc := range []struct {
			name    string
			payload []byte
			reason  string // "" for valid gzip
		}{
			{"valid", gz, ""},
			{"not gzip", []byte("plain text"), "invalid header"},
			{"empty", nil, "the payload is empty"},
			{"cut short", gz[:len(gz)-9], "cut short"},
		} {
			t.Run(fmt.Sprintf("%s/split %d", tc.name, split), func(t *testing.T) {
				data := decompressAll(t, tc.payload, split)
				got := new(ingestionv1.IngestRequest)
				c := newCodec()
				if err := c.Unmarshal(data, got); err != nil {
					t.Fatal(err)
				}
				refused := c.refused(got)
				client := new(ingestionv1.IngestRequest)
				cerr := encoding.GetCodecV2("proto").Unmarshal(data, client)
				if tc.reason == "" {
					if refused != nil || cerr != nil || !proto.Equal(got, in) || !proto.Equal(client, in) {
						t.Fatalf("valid gzip: refused %v, client %v; decoded %v and %v", refused, cerr, got, client)
					}
					return
				}
				if status.Code(refused) != codes.InvalidArgument || !strings.Contains(refused.Error(), "not valid gzip: ") || !strings.Contains(refused.Error(), tc.reason) {
					t.Errorf("server codec: %v, want InvalidArgument naming %q", refused, tc.reason)
				}
				if cerr == nil || !strings.Contains(cerr.Error(), tc.reason) {
					t.Errorf("client codec: %v, want an error naming %q", cerr, tc.reason)
				}
			})
		}
	}
}

// FuzzGzipPayload feeds arbitrary bytes flagged gzip through checkedGzip
// and the servers' codec: nothing fails outside the payload, a payload
// that is valid gzip of a valid request decodes to it, and anything else
// is InvalidArgument.
func FuzzGzipPayload(f *testing.F) {
	valid, err := proto.Marshal(&ingestionv1.IngestRequest{Workspace: "w"})
	if err != nil {
		f.Fatal(err)
	}
	gz := gzipped(f, valid)
	f.Add(gz)
	f.Add(gz[:10])
	f.Add([]byte("not gzip"))
	f.Add([]byte{})
	c := newCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		data := decompressAll(t, b, 1<<20)
		got := new(ingestionv1.IngestRequest)
		if err := c.Unmarshal(data, got); err != nil {
			t.Fatalf("Unmarshal = %v", err)
		}
		refused := c.refused(got)
		zr, zerr := stdgzip.NewReader(bytes.NewReader(b))
		var plain []byte
		if zerr == nil {
			plain, zerr = io.ReadAll(zr)
		}
		if zerr == nil && proto.Unmarshal(plain, new(ingestionv1.IngestRequest)) == nil {
			if refused != nil {
				t.Fatalf("valid gzip of a valid request refused: %v", refused)
			}
			return
		}
		if status.Code(refused) != codes.InvalidArgument {
			t.Fatalf("invalid payload (gzip error %v): refused = %v, want InvalidArgument", zerr, refused)
		}
	})
}

// BenchmarkUnmarshal decodes a 100-event IngestRequest with the servers'
// codec and with the process-wide one (clients, bare servers): the gzip
// fault check is a 16-byte comparison of the payload's tail.
func BenchmarkUnmarshal(b *testing.B) {
	req := &ingestionv1.IngestRequest{Workspace: "w"}
	for i := range 100 {
		req.Events = append(req.Events, &ingestionv1.Event{UserId: fmt.Sprint("u", i), Event: "report_created", MessageId: fmt.Sprint("m", i)})
	}
	data, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		codec encoding.CodecV2
	}{{"server", newCodec()}, {"process-wide", encoding.GetCodecV2("proto")}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := c.codec.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, new(ingestionv1.IngestRequest)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecodeSubscribe decodes what a consumer receives from ingestion's
// Subscribe: 512 tracked events with properties, context and timestamps, as
// the load generator sends them. "runtime" is proto.Unmarshal (the servers'
// codec for requests), "process-wide" the codec clients use.
func BenchmarkDecodeSubscribe(b *testing.B) {
	data, err := proto.Marshal(subscribeResponse(512))
	if err != nil {
		b.Fatal(err)
	}
	b.Run("runtime", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := proto.Unmarshal(data, new(ingestionv1.SubscribeResponse)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("process-wide", func(b *testing.B) {
		c := encoding.GetCodecV2("proto")
		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, new(ingestionv1.SubscribeResponse)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func subscribeResponse(n int) *ingestionv1.SubscribeResponse {
	resp := &ingestionv1.SubscribeResponse{HeadOffset: uint64(n)}
	ts := timestamppb.New(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	for i := range n {
		props, _ := structpb.NewStruct(map[string]any{"plan": "growth", "seats": float64(i % 40), "feature": "reports", "value": 12.5, "first": i%7 == 0})
		ctx, _ := structpb.NewStruct(map[string]any{"groupId": fmt.Sprint("acct-", i%1000), "library": map[string]any{"name": "analytics.js", "version": "2.1.0"}})
		resp.Records = append(resp.Records, &ingestionv1.LogRecord{
			Offset: uint64(i + 1), Partition: 3,
			Kind: &ingestionv1.LogRecord_Event{Event: &ingestionv1.Event{
				Workspace: "demo", Type: ingestionv1.EventType_EVENT_TYPE_TRACK, Event: "report_created", MessageId: fmt.Sprint("run-", i),
				UserId: fmt.Sprint("user-", i%5000), AccountId: fmt.Sprint("acct-", i%1000),
				Timestamp: ts, ReceivedAt: ts, Properties: props, Context: ctx,
			}},
		})
	}
	return resp
}

func TestDecodeSubscribeMatchesRuntime(t *testing.T) {
	want := subscribeResponse(50)
	data, err := proto.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	got := new(ingestionv1.SubscribeResponse)
	if err := encoding.GetCodecV2("proto").Unmarshal(mem.BufferSlice{mem.SliceBuffer(data)}, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, want) {
		t.Fatal("the generated decoder and the protobuf runtime disagree")
	}
	out, err := newCodec().Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	back := new(ingestionv1.SubscribeResponse)
	if err := proto.Unmarshal(out.Materialize(), back); err != nil || !proto.Equal(back, want) {
		t.Fatalf("the generated encoder's output does not decode to the same message: %v", err)
	}
}

func TestVTCodecEncodesAsTheRuntime(t *testing.T) {
	req := &ingestionv1.IngestRequest{Workspace: "w"}
	for _, r := range subscribeResponse(20).GetRecords() {
		req.Events = append(req.Events, r.GetEvent())
	}
	out, err := VTCodec{}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	back := new(ingestionv1.IngestRequest)
	if err := proto.Unmarshal(out.Materialize(), back); err != nil || !proto.Equal(back, req) {
		t.Fatalf("VTCodec's encoding does not decode to the same request: %v", err)
	}
	if (VTCodec{}).Name() != "proto" {
		t.Fatal("VTCodec must keep the proto content subtype")
	}
}
