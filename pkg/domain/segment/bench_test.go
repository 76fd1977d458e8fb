package segment

import (
	"fmt"
	"strings"
	"testing"
)

// benchBatch is the body BenchmarkTrackBatch in services/gateway posts: 100
// track calls with two properties, a context and a timestamp.
func benchBatch() []byte {
	var items []string
	for i := range 100 {
		items = append(items, fmt.Sprintf(`{"type":"track","messageId":"bench-%d","userId":"u%d","event":"report_created",`+
			`"properties":{"seats":%d,"plan":"pro"},"context":{"groupId":"acct-%d"},"timestamp":"2026-05-01T12:00:00Z"}`, i, i%7, i, i%13))
	}
	return []byte(`{"sentAt":"2026-05-01T12:00:01Z","batch":[` + strings.Join(items, ",") + `]}`)
}

// BenchmarkDecodeBatch measures decoding alone; the Reference variant is the
// encoding/json implementation it replaced, for comparison on the same
// machine:
//
//	cd pkg/domain/segment && go test -run '^$' -bench DecodeBatch -benchmem .
func BenchmarkDecodeBatch(b *testing.B) {
	for _, bc := range []struct {
		name   string
		decode func([]byte) (*Batch, error)
	}{{"Hand", DecodeBatch}, {"Reference", refDecodeBatch}} {
		b.Run(bc.name, func(b *testing.B) {
			body := benchBatch()
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				out, err := bc.decode(body)
				if err != nil || len(out.Events) != 100 {
					b.Fatalf("decode: %d events, %v", len(out.Events), err)
				}
			}
			b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
