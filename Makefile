# Thin wrapper: the README's two commands. Both install missing Debian packages first.
BUILD ?= build
JOBS ?= 2

.PHONY: deps build run test test-long long-tests golden bless config-docs test-sanitize build-sanitize bench clean

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/iommusim run --force -o results/default

# Default test run (well under 10 minutes); `make test-long` adds tests labelled long.
test: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure -LE long

test-long: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure

# Only the tests labelled long (the stress matrix's extra seeds, the long fuzz seeds).
long-tests: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure -L long

# Regression goldens (docs/regression.md): `make golden` checks every results/golden/*.json
# (the ctest label golden does the same); `make bless` reruns every example and the default
# run and rewrites their goldens from the runs, printing what changed.
GOLDEN = cmake -DIOMMUSIM=$(BUILD)/iommusim -DSOURCE_DIR=$(CURDIR) -DOUT_DIR=$(BUILD)/golden

golden: build
	$(GOLDEN) -DMODE=check -P scripts/golden.cmake

bless: build
	$(GOLDEN) -DMODE=bless -P scripts/golden.cmake

# docs/config.md is generated from the config key declarations (a test checks it is current).
config-docs: build
	$(BUILD)/iommusim config-docs > docs/config.md

# ASan + UBSan build of the models and tests (cmake -DIOMMUSIM_SANITIZE=ON) in its own
# folder, then the default test set (tests labelled long are skipped). Any report aborts the
# test that triggered it. The options also apply while building, because
# gtest_discover_tests runs each test binary to list its tests.
SANITIZE_BUILD ?= build-sanitize
SANITIZE_ENV = ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1 \
               UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

build-sanitize: deps
	cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOMMUSIM_SANITIZE=ON -DIOMMUSIM_BUILD_BENCH=OFF
	$(SANITIZE_ENV) cmake --build $(SANITIZE_BUILD) -j $(JOBS)

test-sanitize: build-sanitize
	cd $(SANITIZE_BUILD) && $(SANITIZE_ENV) ctest -j $(JOBS) --output-on-failure -LE long

# Simulator speed (bench/README.md): a Release build of its own, CPU-time medians, each case
# checked against its label. BENCH_ARGS=--quick is the short run .ci/run makes.
RELEASE_BUILD ?= build-release
BENCH_ARGS ?=
bench: deps
	cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(RELEASE_BUILD) -j $(JOBS) --target bench_core iommusim
	$(RELEASE_BUILD)/bench/bench_core $(BENCH_ARGS)

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD) $(RELEASE_BUILD)
