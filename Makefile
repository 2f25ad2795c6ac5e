# nats-callout: `make demo` runs the product, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo demo-cluster test build release dist deny tools lint fmt clean browser-deps python-deps web bench fuzz docs \
  clients clients-rust clients-js clients-js-deps package-check

tools:
	@scripts/install-nats-server.sh >/dev/null

# The official Python client the tests connect with (nats-py 2.16.0), into .tools/venv.
python-deps:
	@scripts/install-nats-py.sh >/dev/null

# Optimised with line tables (profilers, make bench); not what ships (see dist).
release:
	$(CARGO) build --release --locked

# The artifact to ship (docs/src/release.md): the dist profile (release without debug
# information, stripped), held to its size budget so that growth is a decision, not drift.
DIST_BUDGET_MB := 25
DIST_BIN := $(or $(CARGO_TARGET_DIR),target)/dist/nats-callout
dist:
	$(CARGO) build --profile dist --locked --bin nats-callout
	@size=$$(stat -c %s $(DIST_BIN)); budget=$$(( $(DIST_BUDGET_MB) * 1024 * 1024 )); \
	  echo "$(DIST_BIN): $$size bytes, budget $(DIST_BUDGET_MB) MiB ($$budget bytes)"; \
	  if [ $$size -gt $$budget ]; then \
	    echo "the dist binary grew past its budget: raise DIST_BUDGET_MB in the same change, and say why" >&2; \
	    exit 1; \
	  fi

# Licenses, duplicate versions and sources of the Rust dependencies (deny.toml). Installs
# cargo-deny into .tools/cargo-deny when missing (a few minutes, from crates.io).
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := .tools/cargo-deny/bin/cargo-deny
deny: $(CARGO_DENY)
	$(CARGO_DENY) check licenses bans sources

$(CARGO_DENY):
	$(CARGO) install cargo-deny --version $(CARGO_DENY_VERSION) --locked --root .tools/cargo-deny

# demo.sh checks the demo's ports first, then builds in release mode and runs everything.
# MODE=operator runs the same demo on a nats-server in operator mode.
MODE ?= config
demo: tools
	MODE=$(MODE) scripts/demo.sh

# Three nats-server nodes (JetStream, R3) and two nats-callout instances sharing their state.
demo-cluster: tools
	scripts/demo-cluster.sh

# The browser test: Debian's Chromium and the pinned npm packages (playwright-core; esbuild
# for `npm run build`). npm ci runs only when the lock file is newer than the install.
browser-deps: web/node_modules/.package-lock.json
	@scripts/install-chromium.sh

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

# The JavaScript client kit's packages (clients/js/node_modules), for its tests and its pack.
clients-js-deps: clients/js/node_modules/.package-lock.json

clients/js/node_modules/.package-lock.json: clients/js/package.json clients/js/package-lock.json
	cd clients/js && npm ci --no-audit --no-fund
	@touch $@

# The client kits: `clients` builds each one. clients-js: the JS kit's types checked (tsc)
# and the npm package packed into target/clients/ (npm pack); clients-rust: the Rust kit.
CLIENTS_OUT := $(abspath $(or $(CARGO_TARGET_DIR),target)/clients)
clients: clients-rust clients-js

clients-js: clients-js-deps
	mkdir -p $(CLIENTS_OUT)
	cd clients/js && npm run check && npm pack --pack-destination $(CLIENTS_OUT)

# The book (docs/): installs mdbook into .tools/mdbook when missing (a few minutes, from
# crates.io; not part of `make test`) and builds it into docs/book (git-ignored).
MDBOOK_VERSION := 0.5.4
MDBOOK := .tools/mdbook/bin/mdbook
docs: $(MDBOOK)
	$(MDBOOK) build docs

$(MDBOOK):
	$(CARGO) install mdbook --version $(MDBOOK_VERSION) --locked --no-default-features \
	  --features search --root .tools/mdbook

# Rebuild the committed chat page bundle (web/dist) from web/src.
web: web/node_modules/.package-lock.json
	cd web && npm run build

# Every workspace member's tests: the service's (with the JS kit's node suite, from
# tests/it/clients.rs) and the Rust client kit's (clients/rust).
test: tools browser-deps python-deps clients-js-deps
	NATS_SERVER_BIN=$$(scripts/install-nats-server.sh) $(CARGO) test --workspace --locked --all-targets

lint: deny package-check
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps --locked
	$(MAKE) --no-print-directory dist

clients-rust:
	$(CARGO) build -p nats-callout-client --locked

# The Rust kit's package holds only what a user needs: the manifest, the README, the sources,
# the example and the tests (anything else listed fails the check).
PACKAGE_FILES := ^(\.cargo_vcs_info\.json|Cargo\.toml|Cargo\.toml\.orig|Cargo\.lock|README\.md|(src|examples|tests)/.+\.rs)$$
package-check:
	@list=$$($(CARGO) package --list -p nats-callout-client --locked --allow-dirty 2>/dev/null) \
	  || { echo "cargo package --list failed"; exit 1; }; \
	extra=$$(grep -vE '$(PACKAGE_FILES)' <<<"$$list"); \
	if [ -n "$$extra" ]; then echo "unexpected files in the kit's package:"; echo "$$extra"; exit 1; fi

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean

# Load benchmark + criterion micro-benchmarks (BENCHMARKS.md). 127.0.0.1 only; stops by itself.
# BENCH_ARGS are passed to the load tool, e.g. BENCH_ARGS="--rounds 5 --storm-clients 0".
BENCH_TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
bench: tools
	$(CARGO) build --profile bench --locked --bin nats-callout --example bench --bench request_path
	NATS_SERVER_BIN=$$(scripts/install-nats-server.sh) \
	  $(BENCH_TARGET_DIR)/release/examples/bench run --out $(BENCH_TARGET_DIR)/bench/results.json $(BENCH_ARGS)
	$(CARGO) bench --locked --bench request_path -- --warm-up-time 1 --measurement-time 2

# Fuzzing (cargo-fuzz, fuzz/): installs cargo-fuzz when missing and runs each target
# (request, access_token, permissions) for FUZZ_TIME seconds (default 60). Nightly flags are
# enabled on the stable toolchain with RUSTC_BOOTSTRAP=1; AddressSanitizer is on (-s address,
# falling back to -s none only where ASan is unavailable). Crash inputs land in
# fuzz/artifacts/; saved in fuzz/regressions/ they are replayed by `make test`.
fuzz:
	scripts/fuzz.sh
