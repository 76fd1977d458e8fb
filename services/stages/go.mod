module github.com/cairn-dev/cairn/services/stages

go 1.26.0
