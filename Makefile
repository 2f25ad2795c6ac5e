# nats-callout: `make demo` runs the product, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test build release tools lint fmt clean browser-deps web

tools:
	@scripts/install-nats-server.sh >/dev/null

release:
	$(CARGO) build --release --locked

demo: tools release
	scripts/demo.sh

# The browser test: Debian's Chromium and the pinned npm packages (playwright-core; esbuild
# for `npm run build`). npm ci runs only when the lock file is newer than the install.
browser-deps: web/node_modules/.package-lock.json
	@scripts/install-chromium.sh

web/node_modules/.package-lock.json: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

# Rebuild the committed chat page bundle (web/dist) from web/src.
web: web/node_modules/.package-lock.json
	cd web && npm run build

test: tools browser-deps
	NATS_SERVER_BIN=$$(scripts/install-nats-server.sh) $(CARGO) test --locked --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
