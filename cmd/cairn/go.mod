module github.com/cairn-dev/cairn/cmd/cairn

go 1.26.0
