# Cairn — the two commands are `make run` and `make test`.
SHELL := /bin/bash
GO ?= go
SERVICES := ingestion stages health routing plays gateway
MODULES := ./gen/... ./pkg/... ./services/ingestion/... ./services/stages/... ./services/health/... ./services/routing/... ./services/plays/... ./services/gateway/... ./cmd/cairn/... ./reliability/...
TEST_FLAGS ?=

.PHONY: all build run test race vet gen gen-check lint bench apply clean

all: build

## build: compile every service and the CLI into ./bin
build:
	@mkdir -p bin
	@for s in $(SERVICES); do $(GO) build -o bin/cairn-$$s ./services/$$s || exit 1; done
	@$(GO) build -o bin/cairn ./cmd/cairn

## run: start the whole suite on localhost with data under ./data (demo workspace if empty)
run: build
	@./bin/cairn run --bin ./bin --data ./data

## test: run every test (add TEST_FLAGS=-race for the race detector)
test:
	$(GO) test $(TEST_FLAGS) $(MODULES)
	@# routing's test-only hooks exist only in -tags cairntest builds
	$(GO) test $(TEST_FLAGS) -tags cairntest -run 'TestEnvHooks' ./services/routing/internal/app/

race:
	$(GO) test -race $(MODULES)

vet:
	$(GO) vet $(MODULES)

## gen: regenerate gen/ from proto/ with the pinned local plugins
gen:
	$(GO) tool buf lint
	find gen -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' | xargs rm -f
	$(GO) tool buf generate

## gen-check: fail when gen/ is stale
gen-check: gen
	@git add -N gen && git diff --exit-code --stat -- gen || (echo "gen/ is stale: run make gen and commit" && exit 1)

bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./pkg/... ./services/...

## apply: apply a journey/health/routing YAML file: make apply FILE=journey.yaml
apply: build
	./bin/cairn apply --activate -f $(FILE)

clean:
	rm -rf bin
