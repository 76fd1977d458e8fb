module github.com/cairn-dev/cairn/services/routing

go 1.26.0
