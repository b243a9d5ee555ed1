# devattest — see README.md. `make demo` and `make test` are the two set-up
# commands; everything else is for developers.

GO        ?= go
BIN       := bin
FUZZTIME  ?= 10s
FUZZJOBS  ?= 1
BENCHTIME ?= 1s
PKGS      := ./...

.PHONY: all build test test-vm vm-kernel demo bench fuzz lint clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/devattest ./cmd/devattest-shim ./cmd/devattest-guest

# Every package's result, the output of each failed test, then each
# skipped test with its reason (tests/testsum), and a count line. The
# raw events stay in out/test.json.
test:
	$(GO) vet $(PKGS)
	@mkdir -p out
	@$(GO) build -o out/testsum ./tests/testsum
	@$(GO) test -race -count=1 -json $(PKGS) > out/test.json 2>&1; status=$$?; \
	  out/testsum < out/test.json; sum=$$?; \
	  if [ $$status -ne 0 ]; then exit $$status; fi; exit $$sum

# The QEMU test alone: Linux with a CXL type-3 device, the DOE driver and
# the shim's sysfs backend against QEMU's DOE model and the kernel's
# cxl_pci (tests/vm). Needs qemu-system-x86_64; fetches the kernel.
test-vm: vm-kernel
	$(GO) test -count=1 -v -run 'TestQEMUCXLDOE' ./tests/vm/

# A Debian kernel and its CXL modules in out/vm-kernel, not installed.
vm-kernel:
	./tests/vm/fetch-kernel.sh

demo:
	@echo "== building bin/devattest, bin/devattest-shim and bin/devattest-guest (a first build fetches modules and compiles them: a minute or more)"
	@$(MAKE) --no-print-directory build
	./tests/demo.sh

# Every Go benchmark, then one summary of the ratios that benchmarks
# measure within one run (the machines are shared and noisy, so absolute
# times are not compared across runs).
bench:
	@mkdir -p out
	@$(GO) test -run='^$$' -bench=. -benchmem -benchtime=$(BENCHTIME) $(PKGS) > out/bench.txt 2>&1; \
	  status=$$?; cat out/bench.txt; exit $$status
	@echo "== ratios (measured within one run)"
	@awk '/^Benchmark/ { for (i = 3; i < NF; i++) { \
	    if ($$(i+1) == "flow/floor" && $$1 ~ /AuthFlowVsCryptoFloor/) print "RATIO attest_flow_vs_crypto_floor", $$i; \
	    if ($$(i+1) == "verify/floor" && $$1 ~ /VerifyVsCryptoFloor/) print "RATIO verify_vs_crypto_floor", $$i; \
	    if ($$(i+1) == "secured/raw" && $$1 ~ /SecuredVsRawAEAD\/4KiB/) print "RATIO secured_msg_vs_raw_aead_4k", $$i; \
	    if ($$(i+1) == "secured/raw" && $$1 ~ /SecuredVsRawAEAD\/256B/) print "RATIO secured_msg_vs_raw_aead_256", $$i; \
	    if ($$(i+1) == "shim/direct") print "RATIO shim_vs_direct_exchange", $$i; \
	    if ($$(i+1) == "8dev/1dev" && $$1 ~ /AttestDevices/) print "RATIO boot_8_vs_1_devices", $$i; \
	    if ($$(i+1) == "keying/session" && $$1 ~ /IDEKeyingVsSession/) print "RATIO ide_keying_vs_session", $$i; \
	    if ($$(i+1) == "captured/plain" && $$1 ~ /CaptureOverhead/) print "RATIO captured_vs_plain_exchange", $$i; \
	  } }' out/bench.txt

# Every fuzz target for FUZZTIME each, FUZZJOBS at a time (see
# tests/fuzz-all.sh): a failing input fails the run and is kept as a seed.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZJOBS=$(FUZZJOBS) ./tests/fuzz-all.sh

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf $(BIN) out
