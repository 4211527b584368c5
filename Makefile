# purpcode: one Go binary for the PurpCode safety post-training recipe.
# `make run` runs the main job on the embedded default; `make test` runs the tests.
# Both install the Debian packages they need when run as root on a fresh machine.

GO      ?= go
BIN     := bin/purpcode
PKGS    := ./...
# In CI (CI=true, any spelling strconv.ParseBool takes as true) missing
# reference data, OpenBLAS or sandbox fail the tests (internal/testref reads
# CI), and the NVRTC compile check of every CUDA kernel must run, not skip.
NVRTC_FLAG := $(if $(filter 1 t T true TRUE True,$(CI)),-nvrtc-required,)

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install the Debian run-time packages if missing (libopenblas0, bubblewrap, python3, libnvrtc11.2; needs root)
	@sh scripts/install-deps.sh

.PHONY: build
build: ## build bin/purpcode
	$(GO) build -o $(BIN) ./cmd/purpcode

.PHONY: run
run: deps build ## the whole PurpCode recipe on the embedded base model (report in runs/demo)
	./$(BIN) run --config configs/demo.yaml --force

.PHONY: sweep
sweep: deps build ## the recipe on 5 worlds (seeds 1-5, one base model whose corpus holds none of their test prompts): mean/min/max table in runs/sweep/sweep.md
	./$(BIN) run --config configs/sweep.yaml --seeds 5 --out runs/sweep --force

.PHONY: test
test: deps testdeps-node ## run every test, then one line of what was skipped and why (CI=true: missing refs, OpenBLAS or sandbox fail)
	$(GO) build -o bin/testsummary ./internal/testsummary
	./bin/testsummary $(GO) test -json -count=1 -timeout 15m $(PKGS)
	$(GO) test -count=1 ./kernels -run 'Compile' $(NVRTC_FLAG)

.PHONY: testdeps-node
testdeps-node: ## install the openai npm client (pinned, lockfile) that serve's tests drive the server with
	@if command -v npm >/dev/null 2>&1; then \
		cd serve/testdata/node && { npm ci --no-audit --no-fund || echo "testdeps-node: npm ci failed; serve's openai client test will be skipped"; }; \
	else \
		echo "testdeps-node: npm not found; serve's openai client test will be skipped"; \
	fi

.PHONY: test-suite-harness
test-suite-harness: deps ## every HumanEval+/MBPP+ canonical solution and `pass` stub through the eval harness (~14 min on 2 cores)
	PURPCODE_SUITE_FULL=1 $(GO) test -count=1 -timeout 60m -run 'TestCanonicalSolutionsPass' -v ./eval/suite/

.PHONY: lint
lint: ## gofmt, go vet and the architecture rules
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) test -count=1 ./internal/archtest/

.PHONY: bench
bench: deps build ## CPU benchmarks: train step, GEMM efficiency, sgemm, decode/prefill, SFT vs PyTorch
	$(GO) test -run '^$$' -bench 'TrainStep' -benchtime 3x ./model/qwen2/
	$(GO) test -run '^$$' -bench 'Sgemm' -benchtime 20x ./kernels/
	$(GO) test -run '^$$' -bench 'Decode|Prefill' -benchtime 3x ./generate/
	./$(BIN) bench --device cpu
	sh scripts/bench-sft-vs-torch.sh $(BIN)

.PHONY: testdata
testdata: build ## regenerate the embedded random tiny model (deterministic)
	./$(BIN) init --config testdata/tiny-random.config.json --out testdata/tiny-random --seed 7

.PHONY: base-model
base-model: build ## regenerate the embedded base model testdata/base-model (deterministic, ~15 min on 2 cores)
	sh scripts/make-base-model.sh ./$(BIN)

.PHONY: clean
clean: ## remove build outputs
	rm -rf bin
