package demo

import _ "embed"

// RoutingYAML is the demo workspace's owners, pools, rules and SLA policies,
// in the format of `cairn apply -f routing.yaml`.
//
//go:embed routing.yaml
var RoutingYAML []byte

// PlaysYAML is the demo workspace's plays, in the format of
// `cairn apply -f plays.yaml`.
//
//go:embed plays.yaml
var PlaysYAML []byte

// JourneyYAML is the demo workspace's second journey, the self-serve
// (trial-led) one next to the default five-stage journey, in the format of
// `cairn apply -f journey.yaml`.
//
//go:embed journey.yaml
var JourneyYAML []byte
