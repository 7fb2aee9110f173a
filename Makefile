# meshpost entry points. The README names two: `make run` and `make test`.
# Every target installs what it needs and is safe to run again.

CARGO        ?= cargo
MUSL_TARGET  ?= x86_64-unknown-linux-musl
STATE        ?= .meshpost
PORT         ?= 4849
# Hard limit from the design brief: 5 MB for the stripped static binary.
SIZE_LIMIT   ?= 5000000
FUZZ_SECONDS ?= 20
# OpenWrt package architecture for `make ipk`.
ARCH         ?= x86_64
CROSS_TARGETS := x86_64-unknown-linux-musl aarch64-unknown-linux-musl
FUZZ_TARGETS := envelope card beacon packet frame e2e_open session_file state_log identity_file uci node_datagrams node_session reassembly mdns ack file_part control_request uci_libuci

.PHONY: bench bridge-idle sim sim-build sim-hostile fuzz-seeds run test check lint unit pytools webtools release size cross cross-mips size-cross qemu-test mips-test packaging-test ipk fuzz fuzz-build tools clean

## run: build and run one daemon in the foreground on built-in defaults,
## with its state and control socket under ./$(STATE) (no root, no UCI file).
run:
	$(CARGO) build --release -p meshpost
	mkdir -p $(STATE)
	./target/release/meshpost daemon --foreground --port $(PORT) \
		--state-dir $(STATE)/state --socket $(STATE)/meshpost.sock

## test: everything CI runs: format, lint, all tests, the static release
## builds for x86_64 and aarch64 with their size checks, the aarch64 binary
## under qemu, and the OpenWrt packaging tests.
test: lint unit size-cross qemu-test mips-test packaging-test

tools:
	@command -v rustup >/dev/null || { echo "rustup is required"; exit 1; }
	@# file(1) checks the binary is static; ip(8) runs the namespace tests;
	@# cmake, a C compiler and libclang build the real libuci (libuci-sys)
	@# that the UCI reader is compared with in tests and fuzzing.
	@missing=""; command -v file >/dev/null || missing="$$missing file"; \
	 command -v ip >/dev/null || missing="$$missing iproute2"; \
	 command -v cmake >/dev/null || missing="$$missing cmake"; \
	 command -v cc >/dev/null || missing="$$missing gcc"; \
	 ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || missing="$$missing libclang-dev"; \
	 python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	 command -v lua5.1 >/dev/null || missing="$$missing lua5.1"; \
	 command -v zbarimg >/dev/null || missing="$$missing zbar-tools"; \
	 [ -f /usr/include/json-c/json.h ] || missing="$$missing libjson-c-dev"; \
	 if [ -n "$$missing" ]; then \
	   if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $$missing; \
	   else echo "note: install$$missing (as root) for the size check and namespace tests"; fi; \
	 fi
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

lint: tools
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	@# The fuzz crate is outside the workspace: check that it still builds.
	$(CARGO) check --quiet --manifest-path fuzz/Cargo.toml

## pytools: the Python programs tests compare against, from PyPI, in a
## venv under target/ (python-zeroconf: an independent mDNS resolver;
## cryptography and kyber-py: independent Ed25519/X25519/AEAD and ML-KEM;
## prometheus-client: Prometheus' own parser of the text format).
PYVENV      := target/pyvenv
PY_PACKAGES := zeroconf==0.154.0 cryptography==50.0.2 kyber-py==1.2.0 prometheus-client==0.26.0
pytools:
	@$(PYVENV)/bin/python -c "import zeroconf, cryptography, kyber_py, prometheus_client" 2>/dev/null || { \
		python3 -m venv $(PYVENV) && $(PYVENV)/bin/pip install -q $(PY_PACKAGES); }

## webtools: headless Chromium (Debian's chromium) and playwright-core
## (npm, pinned, under target/webtools) for the LuCI view tests.
PLAYWRIGHT_VERSION := 1.64.1
webtools:
	@if [ ! -x /usr/bin/chromium ] || ! command -v npm >/dev/null; then \
	  missing=""; [ -x /usr/bin/chromium ] || missing="chromium"; command -v npm >/dev/null || missing="$$missing nodejs npm"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "note: install $$missing (as root) for the LuCI browser test"; fi; \
	fi
	@[ -f target/webtools/node_modules/playwright-core/package.json ] || { \
		mkdir -p target/webtools && cd target/webtools && \
		npm install --silent --no-audit --no-fund playwright-core@$(PLAYWRIGHT_VERSION); }

unit: tools pytools webtools
	$(CARGO) test --workspace

release:
	@rustup target list --installed | grep -qx $(MUSL_TARGET) || rustup target add $(MUSL_TARGET)
	$(CARGO) build --release -p meshpost --target $(MUSL_TARGET)

size: release
	scripts/size-check target/$(MUSL_TARGET)/release/meshpost $(SIZE_LIMIT)

## cross: static, stripped release binaries for every router target that
## builds with a prebuilt std (x86_64, aarch64; see cross-mips for MIPS).
cross:
	@for t in $(CROSS_TARGETS); do \
		rustup target list --installed | grep -qx $$t || rustup target add $$t || exit 1; \
		$(CARGO) build --release -p meshpost --target $$t || exit 1; \
	done

size-cross: cross
	@for t in $(CROSS_TARGETS); do scripts/size-check target/$$t/release/meshpost $(SIZE_LIMIT) || exit 1; done

## cross-mips: mipsel (ath79/ramips) with nightly -Z build-std; see cross/.
cross-mips:
	cross/build-mips.sh mipsel
	scripts/size-check target/mipsel-unknown-linux-musl/release/meshpost $(SIZE_LIMIT)

## qemu-test: two aarch64 daemons under qemu-aarch64-static exchange a message.
qemu-test: cross
	@command -v qemu-aarch64-static >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static; }
	tests/packaging/qemu.sh aarch64

## mips-test: the mipsel build, size-checked, exchanging a message under
## qemu-mipsel-static (big-endian mips is built by cross/build-mips.sh mips,
## but qemu-mips hangs in getifaddrs, see docs/openwrt.md).
mips-test: cross-mips
	@command -v qemu-mipsel-static >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static; }
	tests/packaging/qemu.sh mipsel

## ipk: build dist/meshpost_*_$(ARCH).ipk without the OpenWrt SDK.
ipk:
	@case "$(ARCH)" in \
	  x86_64) t=x86_64-unknown-linux-musl;; \
	  aarch64_generic|aarch64_cortex-a53|aarch64_cortex-a72) t=aarch64-unknown-linux-musl;; \
	  mipsel_24kc|mipsel_74kc|mipsel_mips32) t=mipsel-unknown-linux-musl;; \
	  *) echo "ARCH must be x86_64, aarch64_generic (or another aarch64_*), or mipsel_24kc"; exit 1;; \
	esac; \
	if [ "$$t" = mipsel-unknown-linux-musl ]; then $(MAKE) cross-mips; \
	else rustup target list --installed | grep -qx $$t || rustup target add $$t; \
	  $(CARGO) build --release -p meshpost --target $$t; fi; \
	scripts/mkipk $(ARCH) target/$$t/release/meshpost dist

packaging-test: release
	tests/packaging/run-all.sh

## fuzz: run every fuzz target for FUZZ_SECONDS each (needs nightly),
## starting from the committed minimized corpus fuzz/seeds/TARGET; new
## inputs go to fuzz/corpus/TARGET (not committed). fuzz-seeds merges both
## into a new minimized fuzz/seeds/TARGET, to be committed.
fuzz-build:
	@rustup toolchain list | grep -q nightly || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(CARGO) +nightly fuzz build

fuzz: fuzz-build
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		san=address; [ $$t = uci_libuci ] && san=none; \
		mkdir -p corpus/$$t seeds/$$t; \
		$(CARGO) +nightly fuzz run -s $$san $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 || exit 1; \
	done

fuzz-seeds: fuzz-build
	cd fuzz && for t in $(FUZZ_TARGETS); do \
		san=address; [ $$t = uci_libuci ] && san=none; \
		rm -rf seeds.new/$$t && mkdir -p seeds.new/$$t corpus/$$t seeds/$$t && \
		$(CARGO) +nightly fuzz run -s $$san $$t seeds.new/$$t seeds/$$t corpus/$$t -- -merge=1 -rss_limit_mb=2048 && \
		rm -rf seeds/$$t && mv seeds.new/$$t seeds/$$t || exit 1; \
	done; rmdir seeds.new

clean:
	$(CARGO) clean
	rm -rf $(STATE) fuzz/target

## bridge-idle: eight real daemons idle on one bridge with the default
## timers for about four minutes; the bytes they put on the segment per
## minute (docs/scale.md), against alfred's 74 kB (long; needs root).
bridge-idle:
	$(CARGO) test -p meshpost --test bridge_idle -- --ignored --nocapture

## bench: real release daemons on loopback driven through their sockets
## (tools/bench) beside Reticulum/LXMF from PyPI (tools/bench/lxmf_bench.py),
## in one run; state on tmpfs and on the disk. Writes docs/bench/latest.txt
## for docs/performance.md (long, about 5 minutes; not part of `make test`).
BENCHVENV   := target/benchvenv
BENCH_PY    := rns==1.5.7 lxmf==1.2.1
BENCH       := target/release/meshpost-bench --bin target/release/meshpost
BENCH_OUT   := docs/bench/latest.txt
bench:
	$(CARGO) build --release -p meshpost -p meshpost-bench
	@$(BENCHVENV)/bin/python -c "import RNS, LXMF" 2>/dev/null || { \
		python3 -m venv $(BENCHVENV) && $(BENCHVENV)/bin/pip install -q $(BENCH_PY); }
	@mkdir -p docs/bench
	@{ echo "# make bench, $$(date -u +%Y-%m-%dT%H:%MZ), $$(nproc) cores, $$(uname -m), $$(git rev-parse --short HEAD)"; \
	  for fs in /dev/shm/meshpost-bench target/bench-disk; do echo "## state dir $$fs"; \
	    $(BENCH) --dir $$fs --scenario two --messages 2000; \
	    $(BENCH) --dir $$fs --scenario two --messages 5000 --unlimited; \
	    $(BENCH) --dir $$fs --scenario relay --messages 5000 --unlimited; \
	    $(BENCH) --dir $$fs --scenario backlog --messages 5000; \
	    $(BENCH) --dir $$fs --scenario backlog --messages 10000 --unlimited; done; \
	  echo "## Reticulum/LXMF"; \
	  $(BENCHVENV)/bin/python tools/bench/lxmf_bench.py --messages 2000 --dir /dev/shm/lxmf-bench 2>/dev/null | grep -v '^\['; \
	} | tee $(BENCH_OUT)

## sim: the simulator's sweeps for docs/scale.md (long, about 35 minutes on
## two cores; not part of `make test`). Idle figures are taken over minutes
## 255 to 495: one whole longest beacon interval (4 h) after the backoff
## has reached it. Idle 1000-node runs of 495 minutes took 22 (mesh) and
## 36 (segment) minutes of one core; add them with SIM_IDLE_SIZES=...,1000
## when there is time.
SIM_IDLE_SIZES ?= 10,30,100,300
# The simulator is built for this machine's CPU, in its own target
# directory so that its flags rebuild nothing else: the cipher and curve
# crates' AVX2 code is then inlined (about 15% less time, docs/scale.md,
# "Simulator speed"). SIM_RUSTFLAGS= builds it for any x86_64. Setting
# RUSTFLAGS drops .cargo/config.toml's, so its Poly1305 choice is repeated.
SIM_RUSTFLAGS ?= -C target-cpu=native --cfg poly1305_force_soft
SIM_DIR ?= target/sim-native
SIM := $(SIM_DIR)/sim/meshpost-sim
SIM_MESH_SIZES ?= 10,30,100
sim: sim-build
	$(SIM) --topology segment --sweep $(SIM_IDLE_SIZES) --minutes 495 --warmup 255 --out docs/scale/segment-idle
	$(SIM) --topology mesh --sweep $(SIM_IDLE_SIZES) --minutes 495 --warmup 255 --out docs/scale/mesh-idle
	$(SIM) --topology mesh --sweep $(SIM_MESH_SIZES) --minutes 18 --warmup 10 --cut 12 --out docs/scale/mesh-cut
	$(SIM) --topology mesh --sweep $(SIM_MESH_SIZES) --minutes 40 --warmup 10 --load 20 --loss 0.02 --delay 20 --churn 0.1 --partition 15:10 --out docs/scale/mesh-load
	$(SIM) --topology segment --sweep $(SIM_IDLE_SIZES) --minutes 20 --warmup 10 --channel 10 --out docs/scale/segment-channel
	$(SIM) --topology mesh --sweep $(SIM_IDLE_SIZES) --minutes 20 --warmup 10 --channel 10 --out docs/scale/mesh-channel
	$(MAKE) sim-hostile

## sim-build: the simulator alone, as `sim` and `sim-hostile` run it.
sim-build:
	RUSTFLAGS="$(SIM_RUSTFLAGS)" CARGO_TARGET_DIR=$(SIM_DIR) $(CARGO) build --profile sim -p meshpost-sim

## sim-hostile: one simulated hour of each topology under direct and
## channel load, 5% loss, churn and (single domains) a 10-minute partition;
## SIM_HOSTILE_SIZES=30,100,300,1000 adds the 1000-node runs (2026-12-07:
## the mesh of 1000 took 21 minutes of one core on a slow day,
## docs/scale/mesh-hostile-1000.csv; the segment of 1000 about an hour;
## docs/scale.md),
## SIM_FED_SIZES=100,300,1000 ten communities of 100 (2026-12-06: 26
## minutes of one core, docs/scale/federated-hostile-1000.csv).
SIM_HOSTILE_SIZES ?= 30,100,300
SIM_FED_SIZES ?= 100,300
SIM_HOSTILE = --minutes 60 --warmup 10 --load 20 --loss 0.05 --delay 20 --churn 0.1
sim-hostile: sim-build
	$(SIM) --topology mesh --sweep $(SIM_HOSTILE_SIZES) $(SIM_HOSTILE) --channel 10 --partition 15:10 --out docs/scale/mesh-hostile
	$(SIM) --topology segment --sweep $(SIM_HOSTILE_SIZES) $(SIM_HOSTILE) --channel 10 --partition 15:10 --out docs/scale/segment-hostile
	$(SIM) --topology federated --sweep $(SIM_FED_SIZES) $(SIM_HOSTILE) --out docs/scale/federated-hostile
