module github.com/cairn-dev/cairn/reliability

go 1.26.0
