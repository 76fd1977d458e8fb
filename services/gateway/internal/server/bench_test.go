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
			out, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			// Count only batches whose 100 events were all accepted, so that a
			// decoding regression cannot pass as throughput.
			if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(out, []byte(`"accepted":100,`)) {
				b.Errorf("status %d body %.300s err %v", resp.StatusCode, out, err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
