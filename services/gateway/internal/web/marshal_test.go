package web

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
	healthv1 "github.com/cairn-dev/cairn/gen/cairn/health/v1"
	ingestionv1 "github.com/cairn-dev/cairn/gen/cairn/ingestion/v1"
	stagesv1 "github.com/cairn-dev/cairn/gen/cairn/stages/v1"
)

func TestMarshalMessage(t *testing.T) {
	props, _ := structpb.NewStruct(map[string]any{"plan": "pro", "seats": 12, "tags": []any{"a", "<b>"}})
	tests := []struct {
		name string
		msg  proto.Message
		want string
	}{
		{"unset fields left out", &stagesv1.ListAccountsResponse{}, `{}`},
		{"unknown total left out", &stagesv1.ListAccountsResponse{Page: &commonv1.PageResponse{TotalSize: -1}}, `{"page":{}}`},
		{"known zero total kept", &stagesv1.ListAccountsResponse{Page: &commonv1.PageResponse{NextPageToken: "t"}}, `{"page":{"nextPageToken":"t","totalSize":0}}`},
		{"total a number", &commonv1.PageResponse{TotalSize: 1 << 40}, `{"totalSize":1099511627776}`},
		{"durations to the millisecond", &stagesv1.FunnelStage{
			Stage:             "onboarding",
			Current:           3,
			MedianTimeInStage: &durationpb.Duration{Seconds: 43946142, Nanos: 667981278},
			P90TimeInStage:    durationpb.New(90 * time.Second),
			TimesInStageNs:    []int64{1, -2},
		}, `{"stage":"onboarding","current":3,"medianTimeInStage":"43946142.668s","p90TimeInStage":"90s","timesInStageNs":[1,-2]}`},
		{"negative and sub-second durations", &stagesv1.FunnelStage{
			MedianTimeInStage: &durationpb.Duration{Seconds: -1, Nanos: -500000000},
			P90TimeInStage:    &durationpb.Duration{Nanos: 400000},
		}, `{"medianTimeInStage":"-1.5s","p90TimeInStage":"0s"}`},
		{"maps sorted", &stagesv1.GetReplayResponse{Replay: &stagesv1.Replay{
			StageCounts: map[string]int64{"b": 2, "a": 1},
		}}, `{"replay":{"stageCounts":{"a":1,"b":2}}}`},
		{"timestamps and structs as protojson", &ingestionv1.Event{
			Type:       ingestionv1.EventType_EVENT_TYPE_TRACK,
			Timestamp:  timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)),
			Properties: props,
		}, `{"type":"EVENT_TYPE_TRACK","properties":{"plan":"pro","seats":12,"tags":["a","<b>"]},"timestamp":"2026-03-01T12:00:00.000000500Z"}`},
		{"enums by name", &commonv1.Signal{Kind: commonv1.SignalKind_SIGNAL_KIND_RISK, Attributes: map[string]string{"z": "1", "a": "2"}}, `{"kind":"SIGNAL_KIND_RISK","attributes":{"a":"2","z":"1"}}`},
		{"strings escaped", &commonv1.Signal{Reason: "a\"b\\c\n\x01</script>\u2028"}, `{"reason":"a\"b\\c\n\u0001</script>\u2028"}`},
		{"floats", &healthv1.AccountHealth{Score: 71.25}, `{"score":71.25}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := MarshalMessage(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && string(b) != tc.want {
				t.Errorf("got  %s\nwant %s", b, tc.want)
			}
			if !json.Valid(b) {
				t.Fatalf("%s is not JSON", b)
			}
			// Any protojson decoder reads the answer back.
			back := tc.msg.ProtoReflect().New().Interface()
			if err := protojson.Unmarshal(b, back); err != nil {
				t.Fatalf("protojson cannot read %s: %v", b, err)
			}
			want, _ := protojson.MarshalOptions{}.Marshal(roundDurations(tc.msg))
			got, _ := protojson.MarshalOptions{}.Marshal(back)
			if !protoEqualJSON(t, got, want) {
				t.Errorf("round trip: %s, want %s", got, want)
			}
		})
	}
}

// roundDurations is msg with every Duration of the test messages rounded
// to the millisecond, and total sizes of -1 cleared, as MarshalMessage
// writes them.
func roundDurations(msg proto.Message) proto.Message {
	m := proto.Clone(msg)
	if fs, ok := m.(*stagesv1.FunnelStage); ok {
		for _, d := range []**durationpb.Duration{&fs.MedianTimeInStage, &fs.P90TimeInStage} {
			if *d != nil {
				*d = durationpb.New((*d).AsDuration().Round(time.Millisecond))
			}
		}
	}
	if r, ok := m.(*stagesv1.ListAccountsResponse); ok && r.GetPage().GetTotalSize() < 0 {
		r.Page.TotalSize = 0
	}
	return m
}

func protoEqualJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}

func TestMarshalSpecialFloats(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		b, err := MarshalMessage(&healthv1.AccountHealth{Score: f})
		if err != nil || !json.Valid(b) {
			t.Errorf("%v: %s, %v", f, b, err)
		}
		if err := protojson.Unmarshal(b, &healthv1.AccountHealth{}); err != nil {
			t.Errorf("%v: protojson cannot read %s: %v", f, b, err)
		}
	}
}
