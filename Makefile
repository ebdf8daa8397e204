# egressconf: end-to-end conformance of service-mesh egress control.
# `make e2e` is the main job (kind + Istio + the whole catalog); `make test` runs the tests.

GO      ?= go
BIN     ?= bin
REPORTS ?= reports
# Flags passed to `egressconf run` by `make e2e` (e.g. E2E_FLAGS="--node-image local/kind-node:v1.34.4").
E2E_FLAGS ?=

.PHONY: build release test lint e2e sim mutate bench bench-live fuzz clean report-test

build:
	$(GO) build -o $(BIN)/egressconf ./cmd/egressconf
	$(GO) build -o $(BIN)/standin ./cmd/standin

# The release binary: no build paths in it (-trimpath), no symbol table or DWARF (-s -w: 29%
# smaller, README), the version from git stamped in (egressconf version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
release:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)/egressconf ./cmd/egressconf

# Unit tests, the real-curl tests, the whole catalog on the offline backend (go test ./suites/...).
test:
	$(GO) test ./...

lint:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The main job: a kind cluster, Istio from its Helm charts, the whole catalog, reports/<run>/.
e2e: build
	$(BIN)/egressconf run --backend kind --reports $(REPORTS) $(E2E_FLAGS)

# The whole catalog on Istio's control plane in process: no cluster needed.
sim: build
	$(BIN)/egressconf run --backend sim --reports $(REPORTS)

# The catalog's checks checked: every change of every group left out in turn on the offline backend;
# fails on an expectation that passes either way and is not declared holdsRegardless (README).
# MUTATE_FLAGS="--catalog DIR" checks another catalog.
MUTATE_FLAGS ?=
mutate: build
	$(BIN)/egressconf mutate --backend sim --reports $(REPORTS) $(MUTATE_FLAGS)

# report.html in a real browser: G1 on the offline backend, its page in headless Chromium (Debian's
# chromium), the rendered table checked against results.json, a filter, a screenshot in
# SCREENSHOT_DIR. Fails, instead of skipping, when no chromium is installed.
SCREENSHOT_DIR ?= $(REPORTS)/browser
report-test:
	EGRESSCONF_BROWSER_TEST=1 EGRESSCONF_SCREENSHOT_DIR=$(abspath $(SCREENSHOT_DIR)) \
		$(GO) test -count=1 -v -run '^TestReportInBrowser$$' ./internal/reportbrowser/

# Speed and memory of the offline backend over the whole catalog.
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 3x ./pkg/backend/sim/

# Where a live run's wall time goes: the whole catalog on kind through real Envoy, on a fresh
# cluster and then on the same cluster reused, printed side by side (egressconf timing). A
# benchmark, not a test. BENCH_FLAGS adds flags to both runs (e.g. --group G1).
bench-live:
	REPORTS=$(REPORTS) BENCH_FLAGS="$(BENCH_FLAGS)" scripts/bench-live.sh

# Each fuzz target for FUZZTIME (CI: 10s each); the seeds and found cases also run in `make test`.
FUZZTIME ?= 30s
# A bare "context deadline exceeded" at the end of -fuzztime, with no failing input written, is Go's
# fuzzing coordinator, not a finding: scripts/fuzz.sh retries it once.
fuzz:
	GO=$(GO) scripts/fuzz.sh $(FUZZTIME) ./pkg/probe/:FuzzParseOutput ./pkg/probe/:FuzzParseCurl \
		./pkg/accesslog/:FuzzParseLine ./pkg/runner/:FuzzRunScenario

clean:
	rm -rf $(BIN)
	find $(REPORTS) -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
