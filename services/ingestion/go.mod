module github.com/cairn-dev/cairn/services/ingestion

go 1.26.0
