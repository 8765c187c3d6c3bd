# nobg — common tasks. `make test` is what CI runs.
CARGO ?= cargo

.PHONY: run test test-full bench lint fmt check-backends

# Run the server on the default model (RMBG-2.0, downloaded from the Hugging Face hub on first run).
run:
	$(CARGO) run --release -p nobg-server -- --listen 0.0.0.0:8080

test:
	$(CARGO) test --workspace

test-full: test
	$(CARGO) test --workspace -- --ignored

bench:
	$(CARGO) bench --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all
