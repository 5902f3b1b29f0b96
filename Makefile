# A thin wrapper over the go command. "make test" is what CI runs.
GO       ?= go
FUZZTIME ?= 30s
BENCH    ?= .

.PHONY: build test lint fuzz bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/beacon ./cmd/beacon

test: lint
	$(GO) test -race -timeout 20m ./...

lint:
	@unformatted=$$(gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt would rewrite:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@# The client must keep building for a defender's browser (DESIGN.md).
	GOOS=js GOARCH=wasm $(GO) build -o /dev/null ./client

# Each fuzz target runs for FUZZTIME (go test -fuzz takes one target at a time).
fuzz:
	@for t in envelope:FuzzParse envelope:FuzzOpen envelope:FuzzParseSigned \
		message:FuzzUnmarshal message:FuzzMarshalRoundTrip \
		keys:FuzzParsePublicIdentity keys:FuzzParseSecretKeys keys:FuzzVerifyDirectory; do \
		echo "fuzz $$t for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$${t#*:}$$" -fuzztime=$(FUZZTIME) ./$${t%%:*} || exit 1; \
	done

# Crypto and relay benchmarks run for 2s each; the end-to-end pipeline
# benchmarks are whole runs of thousands of alerts, so once each.
bench:
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchtime=2s ./envelope ./relay
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchtime=1x ./client

clean:
	rm -rf bin
