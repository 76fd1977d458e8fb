package server

import (
	"errors"
	"flag"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestReplicaFlags(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		args     []string
		host     string
		index    int
		replicas int
		owned    []uint32
		err      string // from Parse or Validate
	}{
		{name: "default is the single replica", index: 0, replicas: 1, owned: []uint32{0, 1, 2, 3, 4, 5, 6, 7}},
		{name: "flags", args: []string{"-replica", "1", "-replicas", "2"}, index: 1, replicas: 2, owned: []uint32{1, 3, 5, 7}},
		{name: "environment", env: map[string]string{"CAIRN_REPLICA": "2", "CAIRN_REPLICAS": "3"}, index: 2, replicas: 3, owned: []uint32{2, 5}},
		{name: "flags override environment", env: map[string]string{"CAIRN_REPLICA": "2", "CAIRN_REPLICAS": "3"}, args: []string{"-replica", "0", "-replicas", "4"}, index: 0, replicas: 4, owned: []uint32{0, 4}},
		{name: "auto from a StatefulSet hostname", host: "cairn-stages-3", args: []string{"-replica", "auto", "-replicas", "4"}, index: 3, replicas: 4, owned: []uint32{3, 7}},
		{name: "auto from the environment", host: "health-0", env: map[string]string{"CAIRN_REPLICA": "auto", "CAIRN_REPLICAS": "2"}, index: 0, replicas: 2, owned: []uint32{0, 2, 4, 6}},
		{name: "auto without an ordinal", host: "laptop", args: []string{"-replica", "auto"}, err: `hostname "laptop" does not end in -<ordinal>`},
		{name: "auto env without an ordinal", host: "laptop", env: map[string]string{"CAIRN_REPLICA": "auto"}, err: `-replica: environment CAIRN_REPLICA="auto"`},
		{name: "negative index", args: []string{"-replica", "-1"}, err: "non-negative integer"},
		{name: "index not below count", args: []string{"-replica", "2", "-replicas", "2"}, err: "-replica: 2 is not between 0 and -replicas - 1 (1)"},
		{name: "zero replicas", args: []string{"-replicas", "0"}, err: "want an integer from 1"},
		{name: "more replicas than partitions", args: []string{"-replicas", "9"}, err: "-replicas: 9 is not between 1 and -partitions (8)"},
		{name: "bad replicas in the environment", env: map[string]string{"CAIRN_REPLICAS": "two"}, err: `-replicas: environment CAIRN_REPLICAS="two"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			host := tc.host
			prev := hostname
			hostname = func() (string, error) {
				if host == "" {
					return "", errors.New("no hostname")
				}
				return host, nil
			}
			t.Cleanup(func() { hostname = prev })
			c := Config{Name: "stages"}
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(new(strings.Builder))
			c.RegisterFlags(fs)
			err := fs.Parse(tc.args)
			if err == nil {
				err = c.Validate()
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Replica != tc.index || c.Replicas != tc.replicas {
				t.Fatalf("replica %d of %d, want %d of %d", c.Replica, c.Replicas, tc.index, tc.replicas)
			}
			if got := c.OwnedPartitions(); !slices.Equal(got, tc.owned) {
				t.Fatalf("OwnedPartitions = %v, want %v", got, tc.owned)
			}
			for p := range c.Partitions {
				if c.Owns(p) != slices.Contains(tc.owned, p) {
					t.Fatalf("Owns(%d) = %v, disagrees with OwnedPartitions %v", p, c.Owns(p), tc.owned)
				}
			}
		})
	}
}

// TestZeroReplicasIsOne checks that a Config built in code without the
// replica fields is the single replica owning every partition.
func TestZeroReplicasIsOne(t *testing.T) {
	c := Config{Name: "x", GRPCAddr: "127.0.0.1:0", Partitions: 4}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.OwnedPartitions(); !slices.Equal(got, []uint32{0, 1, 2, 3}) {
		t.Fatalf("OwnedPartitions = %v", got)
	}
}

func TestSplitList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"127.0.0.1:7102", []string{"127.0.0.1:7102"}},
		{"stages-0.stages:7102, stages-1.stages:7102 ,", []string{"stages-0.stages:7102", "stages-1.stages:7102"}},
	}
	for _, tc := range tests {
		if got := SplitList(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitList(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDialList(t *testing.T) {
	if _, err := DialList(" , ", ""); err == nil {
		t.Fatal("DialList of an empty list succeeded")
	}
	conns, err := DialList("127.0.0.1:1,127.0.0.1:2", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 2 || conns[1].Target() != "127.0.0.1:2" {
		t.Fatalf("conns = %v", conns)
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// partitionReq is a request naming a partition, as SubscribeRequest does.
type partitionReq struct{ p uint32 }

func (r *partitionReq) GetPartition() uint32 { return r.p }

// recvStream is a ServerStream whose RecvMsg yields one partition.
type recvStream struct {
	grpc.ServerStream
	p uint32
	// header, when set, receives the header sent (see SendHeader).
	header *metadata.MD
}

func (s recvStream) RecvMsg(m any) error {
	m.(*partitionReq).p = s.p
	return nil
}

func TestOwnedPartitions(t *testing.T) {
	tests := []struct {
		name              string
		replica, replicas int
		method            string
		partition         uint32
		code              codes.Code
	}{
		{name: "owned", replica: 1, replicas: 2, method: "/cairn.stages.v1.StagesService/Subscribe", partition: 3, code: codes.OK},
		{name: "not owned", replica: 1, replicas: 2, method: "/cairn.stages.v1.StagesService/Subscribe", partition: 4, code: codes.FailedPrecondition},
		{name: "single replica owns all", replica: 0, replicas: 1, method: "/cairn.stages.v1.StagesService/Subscribe", partition: 5, code: codes.OK},
		{name: "out of range left to the handler", replica: 1, replicas: 2, method: "/cairn.stages.v1.StagesService/Subscribe", partition: 100, code: codes.OK},
		{name: "other streams unchecked", replica: 1, replicas: 2, method: "/cairn.ingestion.v1.IngestionService/IngestStream", partition: 4, code: codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &Server{cfg: Config{Partitions: 8, Replica: tc.replica, Replicas: tc.replicas}}
			err := s.ownedPartitions(nil, recvStream{p: tc.partition}, &grpc.StreamServerInfo{FullMethod: tc.method},
				func(_ any, ss grpc.ServerStream) error { return ss.RecvMsg(&partitionReq{}) })
			if status.Code(err) != tc.code {
				t.Fatalf("err = %v, want code %v", err, tc.code)
			}
			if tc.code == codes.FailedPrecondition && !strings.Contains(err.Error(), "partition: 4 belongs to replica 0 of 2") {
				t.Fatalf("err = %v, want it to name the owner", err)
			}
		})
	}
}
