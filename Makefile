# nats-callout: `make demo` runs the product, `make test` runs every test.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: demo test build release tools lint fmt clean

tools:
	@scripts/install-nats-server.sh >/dev/null

release:
	$(CARGO) build --release --locked

demo: tools release
	scripts/demo.sh

test: tools
	NATS_SERVER_BIN=$$(scripts/install-nats-server.sh) $(CARGO) test --locked --all-targets

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
