# streambudget: per-team log budgets from Kinesis to Elasticsearch.
# `make demo` shows it working; `make test` runs every test. `make help` lists the rest.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go
STACK_DIR ?= $(CURDIR)/.stack
export STACK_DIR
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := $(STACK_DIR)/bin/streambudget
FUZZTIME ?= 3s
FUZZPARALLEL ?= 2

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build the streambudget binary into .stack/bin
	@mkdir -p $(dir $(BIN))
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/streambudget
	@echo "built $(BIN)"

SIM_SEEDS ?= 2000

.PHONY: test
test: ## run every test, unit and integration: installs the tools and starts the local stack it needs; prints each phase's time
	GO=$(GO) FUZZTIME=$(FUZZTIME) SIM_SEEDS=$(SIM_SEEDS) integration/test-all.sh

.PHONY: test-unit
test-unit: ## unit tests with the race detector, a short run of every fuzz target, the simulation over SIM_SEEDS schedules
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v -e /integration/helm -e /integration/prometheus)
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(FUZZTIME)
	$(GO) test -count=1 -run '^TestSimulation$$' ./pkg/consumer -sim.seeds $(SIM_SEEDS)

.PHONY: test-charts
test-charts: tools ## the charts, the Prometheus rules and dashboards (helm and promtool installed as needed)
	$(GO) test -count=1 ./integration/helm ./integration/prometheus

.PHONY: test-integration
test-integration: ## integration tests on the local stack (started and stopped as needed); ARGS='-run TestName' to pick
	integration/test.sh $(ARGS)

# The image: built without a Docker daemon by integration/tools/image (its own
# module, pinned go-containerregistry), stamped from the commit so that the
# same commit gives the same digest.
IMAGE_LAYOUT ?= $(STACK_DIR)/image
IMAGE ?= ghcr.io/streambudget/streambudget:$(VERSION)
IMAGE_TOOL := $(GO) run -C integration/tools/image .

.PHONY: image
image: ## build the multi-arch (linux/amd64, linux/arm64) OCI image into .stack/image, no Docker needed; prints its digest
	$(IMAGE_TOOL) build --root $(CURDIR) --out $(IMAGE_LAYOUT) --version $(VERSION) \
	  --revision $$(git rev-parse HEAD) --created $$(git log -1 --format=%ct)

.PHONY: image-push
image-push: ## push .stack/image to IMAGE (default ghcr.io/streambudget/streambudget:VERSION; docker login first)
	$(IMAGE_TOOL) push --layout $(IMAGE_LAYOUT) $(IMAGE)

.PHONY: test-image
test-image: ## the image: reproducible, pushed to and pulled from a local registry, its binary run
	cd integration/tools/image && $(GO) test -count=1 -timeout 15m ./...

.PHONY: test-k8s
test-k8s: ## every render of both charts decoded strictly into Kubernetes types and checked against Pod Security restricted
	cd integration/k8s && $(GO) test -count=1 -timeout 10m ./...

.PHONY: tools
tools: ## install the test tools: helm (built from the Go module proxy), prometheus, promtool and chromium (Debian), the stack's servers
	integration/helm/helm.sh >/dev/null
	integration/prometheus/install.sh >/dev/null
	integration/browser/install.sh >/dev/null
	integration/stack/stack.sh install

.PHONY: fuzz
fuzz: ## run every fuzz target, then the consumer simulation on new seeds, for FUZZTIME each (make fuzz FUZZTIME=5m for a long run)
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZPARALLEL=$(FUZZPARALLEL) integration/fuzz.sh

.PHONY: lint
lint: ## gofmt, go vet (with the integration tag) and the example budgets
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./...
	$(GO) run ./cmd/streambudget lint --strict budgets/

.PHONY: stack-up
stack-up: ## start the local stack (Kinesis and DynamoDB emulators, search server); idempotent
	integration/stack/stack.sh up

.PHONY: stack-down
stack-down: ## stop what stack-up started
	integration/stack/stack.sh down

.PHONY: stack-status
stack-status: ## show what the local stack runs where
	integration/stack/stack.sh status

.PHONY: demo
demo: build ## three teams on the local stack, one spiking: watch the budgets hold (DEMO_SECONDS, DEMO_SPIKE_FACTOR)
	integration/demo.sh

BENCHTIME ?= 1s

.PHONY: bench
bench: ## benchmarks per record, pacing accuracy and end to end on the local stack: one table (also .stack/bench/results.json)
	GO=$(GO) BENCHTIME=$(BENCHTIME) integration/bench/run.sh
