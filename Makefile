# meshpost entry points. The README names two: `make run` and `make test`.
# Every target installs what it needs and is safe to run again.

CARGO        ?= cargo
MUSL_TARGET  ?= x86_64-unknown-linux-musl
STATE        ?= .meshpost
PORT         ?= 4849
# Hard limit from the design brief: 5 MB for the stripped static binary.
SIZE_LIMIT   ?= 5000000
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := envelope card packet frame e2e_open identity_file uci node_datagrams reassembly mdns ack

.PHONY: run test check lint unit release size fuzz fuzz-build tools clean

## run: build and run one daemon in the foreground on built-in defaults,
## with its state and control socket under ./$(STATE) (no root, no UCI file).
run:
	$(CARGO) build --release -p meshpost
	mkdir -p $(STATE)
	./target/release/meshpost daemon --foreground --port $(PORT) \
		--state-dir $(STATE)/state --socket $(STATE)/meshpost.sock

## test: everything CI runs: format, lint, all tests, the static release
## build and its size check.
test: lint unit size

tools:
	@command -v rustup >/dev/null || { echo "rustup is required"; exit 1; }
	@# file(1) checks the binary is static; ip(8) runs the namespace tests.
	@missing=""; command -v file >/dev/null || missing="$$missing file"; \
	 command -v ip >/dev/null || missing="$$missing iproute2"; \
	 if [ -n "$$missing" ]; then \
	   if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	   else echo "note: install$$missing (as root) for the size check and namespace tests"; fi; \
	 fi
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

lint: tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

release:
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	$(CARGO) build --release -p meshpost --target $(MUSL_TARGET)

size: release
	scripts/size-check target/$(MUSL_TARGET)/release/meshpost $(SIZE_LIMIT)

## fuzz: run every fuzz target for FUZZ_SECONDS each (needs nightly).
fuzz-build:
	@rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(CARGO) +nightly fuzz build

fuzz: fuzz-build
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		$(CARGO) +nightly fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf $(STATE) fuzz/target
