package server

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cairn-dev/cairn/services/gateway/internal/fakes"
)

// BenchmarkTrackBatch posts 100-event Segment batches through the whole
// gateway handler (HTTP, auth, decoding, gRPC to a loopback fake ingestion)
// and reports events/s.
func BenchmarkTrackBatch(b *testing.B) {
	e := newEnv(b, envOptions{})
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprintf(`{"type":"track","messageId":"bench-%d","userId":"u%d","event":"report_created",`+
			`"properties":{"seats":%d,"plan":"pro"},"context":{"groupId":"acct-%d"},"timestamp":"2026-05-01T12:00:00Z"}`, i, i%7, i, i%13))
	}
	body := []byte(`{"sentAt":"2026-05-01T12:00:01Z","batch":[` + strings.Join(items, ",") + `]}`)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(fakes.WriteKey+":"))
	client := e.srv.Client()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest("POST", e.srv.URL+"/v1/batch", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Authorization", auth)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
