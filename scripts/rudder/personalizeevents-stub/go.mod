// A stand-in for github.com/aws/aws-sdk-go-v2/service/personalizeevents,
// whose module archive the Go proxy reachable here does not serve.
// scripts/rudder-bench.sh builds rudder-server with it (a replace in a
// copy of rudder-server's go.mod) only when the real module cannot be
// downloaded. The benchmark has no destinations, so Amazon Personalize is
// never called; if it were, every call fails with errUnavailable.
module github.com/aws/aws-sdk-go-v2/service/personalizeevents

go 1.24

require github.com/aws/aws-sdk-go-v2 v1.42.1
