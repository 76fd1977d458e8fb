package server

import (
	"strconv"
	"strings"

	commonv1 "github.com/cairn-dev/cairn/gen/cairn/common/v1"
)

// ServiceBacklog is how far one service is behind the logs it consumes.
type ServiceBacklog struct {
	// Service is "stages", "health", "routing" or "plays".
	Service string `json:"service"`
	// Behind is the upstream records not yet applied, over every consumer
	// and partition (and every replica of stages and health).
	Behind uint64 `json:"behind"`
	// CaughtUp says every consumer has heard its upstream's head and
	// applied up to it.
	CaughtUp bool `json:"caughtUp"`
	// Storage says what is wrong with writing the service's store ("disk
	// full since ..."); absent while writes succeed.
	Storage string `json:"storage,omitempty"`
}

// Processing is the answer of GET /v1/dashboard/status: whether the
// services are still working through records they have been sent, so
// that the numbers they answer are still moving.
type Processing struct {
	// Behind is the upstream records that some consumer has still to
	// apply, each counted once however many consumers (services, replicas)
	// read it: an event that stages, health and routing all have still to
	// read is one record behind, not three. Behind = Events + Updates.
	Behind uint64 `json:"behind"`
	// Events is the part of Behind that is ingestion's events.
	Events uint64 `json:"events"`
	// Updates is the part of Behind that the services derived and pass on
	// to each other: stage changes, scores and signals, handoffs.
	Updates uint64 `json:"updates"`
	// CaughtUp says every service has caught up.
	CaughtUp bool `json:"caughtUp"`
	// Services are stages, health, routing and (when it runs) plays, in
	// that order.
	Services []ServiceBacklog `json:"services"`
}

// SumBacklogs sums the backlogs of the services, given in the order they
// are reported. A service without a backlog is not known to have caught up.
//
// A record is behind once, whoever has still to read it: for each upstream
// log partition (a ConsumerLag's source and partition, the same for every
// consumer of it), the records behind are those after the slowest
// consumer's cursor up to the newest head any consumer has heard. A
// service's own Behind is its backlog's lag, over its own consumers.
func SumBacklogs(services []string, backlogs []*commonv1.Backlog) Processing {
	out := Processing{CaughtUp: true, Services: make([]ServiceBacklog, len(services))}
	type log struct {
		source    string
		partition uint32
	}
	type span struct{ cursor, head uint64 }
	spans := map[log]span{}
	for i, name := range services {
		b := backlogs[i]
		s := ServiceBacklog{Service: name, Behind: b.GetLag(), CaughtUp: b.GetCaughtUp(), Storage: b.GetStorage()}
		out.Services[i] = s
		out.CaughtUp = out.CaughtUp && s.CaughtUp
		for _, c := range b.GetConsumers() {
			k := log{c.GetSource(), c.GetPartition()}
			sp, seen := spans[k]
			if !seen {
				sp = span{cursor: c.GetCursor(), head: c.GetHead()}
			}
			sp.cursor = min(sp.cursor, c.GetCursor())
			sp.head = max(sp.head, c.GetHead())
			spans[k] = sp
		}
	}
	for k, sp := range spans {
		behind := sp.head - min(sp.cursor, sp.head)
		if isEvents(k.source) {
			out.Events += behind
		} else {
			out.Updates += behind
		}
	}
	out.Behind = out.Events + out.Updates
	return out
}

// isEvents reports whether a consumer's source is ingestion's event log:
// "ingestion", or "ingestion-1" for the log of ingestion replica 1
// (stream.ReplicaName).
func isEvents(source string) bool {
	rest, ok := strings.CutPrefix(source, "ingestion")
	if !ok {
		return false
	}
	if rest == "" {
		return true
	}
	n, ok := strings.CutPrefix(rest, "-")
	_, err := strconv.Atoi(n)
	return ok && err == nil
}
