# devattest — see README.md. `make demo` and `make test` are the two set-up
# commands; everything else is for developers.

GO        ?= go
BIN       := bin
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
PKGS      := ./...

.PHONY: all build test demo bench fuzz lint clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/devattest ./cmd/devattest-shim ./cmd/devattest-guest

test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 $(PKGS)

demo: build
	./tests/demo.sh

bench:
	$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $(PKGS)

# Every fuzz target, one after the other, for FUZZTIME each.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/^func //'); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=100x $$pkg; \
	  done; \
	done

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf $(BIN) out
