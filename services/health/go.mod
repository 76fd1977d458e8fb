module github.com/cairn-dev/cairn/services/health

go 1.26.0
