package app

import (
	"testing"

	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	"github.com/cairn-dev/cairn/pkg/clock"
)

func TestCallClasses(t *testing.T) {
	c := newCalls(Admission{Writes: 1, WritesPerKey: 1, Streams: 1, StreamsPerKey: 1, Readers: 1, ReadersPerKey: 1, Subscribers: 1, SubscribersPerKey: 1}, clock.Real{})
	tests := []struct {
		method string
		want   string // class name, "" when not admitted
	}{
		{ingestionv1.IngestionService_Ingest_FullMethodName, "ingestion writes"},
		{ingestionv1.IngestionService_IngestStream_FullMethodName, "ingestion streams"},
		{ingestionv1.IngestionService_Subscribe_FullMethodName, "ingestion subscribers"},
		{ingestionv1.IngestionService_ListAccountEvents_FullMethodName, "ingestion reads"},
		{ingestionv1.IngestionService_GetLogInfo_FullMethodName, "ingestion reads"},
		{ingestionv1.IngestionService_DeleteSubject_FullMethodName, "ingestion reads"},
		{"/grpc.health.v1.Health/Check", ""},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", ""},
		{"/cairn.ingestion.v1.IngestionServiceX/Ingest", ""},
	}
	for _, tt := range tests {
		got := ""
		if ctl := c.class(tt.method); ctl != nil {
			got = ctl.Name()
		}
		if got != tt.want {
			t.Errorf("class(%s) = %q, want %q", tt.method, got, tt.want)
		}
	}
}
