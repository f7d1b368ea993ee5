# edgeseal: `make demo` runs the whole job on embedded defaults, `make test`
# passes the tests. Targets that need Debian packages install the missing ones
# when run as root and otherwise print the exact apt-get line.

GO ?= go
# staticcheck as scripts/deps.sh installs it (go install into GOPATH/bin).
STATICCHECK ?= $(firstword $(subst :, ,$(shell $(GO) env GOPATH)))/bin/staticcheck
EDGESEAL_DEMO_DIR ?= ./demo-out
FUZZTIME ?= 60
TEST_FUZZTIME ?= 2
# make soak runs the agent's crash test, the sync outage test and the
# randomized disk-fault test with SOAK times their rounds (the fault test:
# SOAK x 20 injected faults), and the journal's and spool's crash tests
# SOAK times.
SOAK ?= 10
# make package: host (this machine's architecture), all, or a list.
ARCHS ?= host

.PHONY: all build demo test fuzz bench soak vet package deps-demo deps-test deps-package clean

all: build

build: deps-demo
	$(GO) build -o bin/edgeseal ./cmd/edgeseal

demo: deps-demo
	EDGESEAL_DEMO_DIR=$(EDGESEAL_DEMO_DIR) $(GO) run ./cmd/edgeseal demo

test: deps-test
	$(GO) vet ./...
	$(GO) -C packaging/build vet ./...
	$(STATICCHECK) ./...
	cd packaging/build && $(STATICCHECK) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) test -race -timeout 15m ./...
	./scripts/fuzz.sh $(TEST_FUZZTIME)

fuzz: deps-test
	./scripts/fuzz.sh $(FUZZTIME)

bench: deps-test
	$(GO) run ./bench/report -out bench/RESULTS.md

soak: deps-test
	EDGESEAL_SOAK=$(SOAK) $(GO) test -race -count=1 -p 1 -timeout 150m -run '^(TestAgentCrash|TestSyncOutage|TestFaultsRandom|TestArchiveReplicas)$$' ./e2e
	$(GO) test -race -count=$(SOAK) -p 1 -timeout 150m -run 'Crash|Soak' ./store/... ./agent/...

vet:
	$(GO) vet ./...
	$(GO) -C packaging/build vet ./...

# .deb and .rpm in dist/ (packaging/build, nfpm): for this machine's
# architecture by default, ARCHS=all for amd64, arm64 and armv7, or a list
# (ARCHS=arm64,armv7). VERSION= and SOURCE_DATE_EPOCH= override what git says.
# The Node-RED node package (integrations/node-red) goes beside them, as
# npm pack makes it.
package: deps-package
	$(GO) -C packaging/build run . -root $(CURDIR) -out $(CURDIR)/dist -go $(GO) -arch $(ARCHS)
	cd integrations/node-red && npm pack --pack-destination $(CURDIR)/dist

deps-demo:
	@GO="$(GO)" ./scripts/deps.sh demo

deps-test:
	@GO="$(GO)" ./scripts/deps.sh test

deps-package:
	@./scripts/deps.sh package

clean:
	rm -rf bin dist $(EDGESEAL_DEMO_DIR)
