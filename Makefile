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

# Each fuzz target runs for FUZZTIME (go test -fuzz takes one target at a time).
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./envelope
	$(GO) test -run='^$$' -fuzz='^FuzzOpen$$' -fuzztime=$(FUZZTIME) ./envelope
	$(GO) test -run='^$$' -fuzz='^FuzzParseSigned$$' -fuzztime=$(FUZZTIME) ./envelope
	$(GO) test -run='^$$' -fuzz='^FuzzUnmarshal$$' -fuzztime=$(FUZZTIME) ./message
	$(GO) test -run='^$$' -fuzz='^FuzzParsePublicIdentity$$' -fuzztime=$(FUZZTIME) ./keys
	$(GO) test -run='^$$' -fuzz='^FuzzVerifyDirectory$$' -fuzztime=$(FUZZTIME) ./keys

bench:
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchmem ./envelope ./relay ./client

clean:
	rm -rf bin
