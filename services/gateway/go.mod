module github.com/cairn-dev/cairn/services/gateway

go 1.26.0
