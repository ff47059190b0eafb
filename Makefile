# Thin wrapper: the README's two commands. Both install missing Debian packages first.
BUILD ?= build
JOBS ?= 2

.PHONY: deps build run test test-long long-tests slurm-test golden bless config-docs test-sanitize build-sanitize bench clean

deps:
	./scripts/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/iommusim run --force -o results/default

# Default test run (well under 10 minutes); `make test-long` adds tests labelled long.
# Neither runs the slurm label (it starts Slurm daemons): `make slurm-test` does.
test: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure -LE 'long|slurm'

test-long: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure -LE slurm

# Only the tests labelled long (the stress matrix's extra seeds, the long fuzz seeds).
long-tests: build
	cd $(BUILD) && ctest -j $(JOBS) --output-on-failure -L long

# The slurm label (docs/sweep.md): installs Debian's Slurm and munge if missing, starts a
# one-node cluster on localhost and runs a sweep as an array job. The test reports itself
# skipped, saying why, where Slurm cannot start (no root, no packages, no daemons).
slurm-test: build
	./scripts/install-deps.sh slurm || echo "slurm-test: could not install Slurm; the test will skip" >&2
	cd $(BUILD) && ctest -V -L slurm

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
# LSAN_OPTIONS=use_stacks=0: LeakSanitizer's tracer dies with SIGSEGV ("Tracer caught signal
# 11 ... LeakSanitizer has encountered a fatal error") while scanning thread stacks of these
# SystemC processes on some machines (seen on Linux 6.18 with GCC 12's libsanitizer: about one
# test in five, depending on the stack layout, even with ASLR off). Leaks are still checked;
# only live stacks are not scanned as roots, which can only add reports, never hide one.
SANITIZE_ENV = ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1 \
               LSAN_OPTIONS=use_stacks=0 \
               UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

build-sanitize: deps
	cmake -S . -B $(SANITIZE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIOMMUSIM_SANITIZE=ON -DIOMMUSIM_BUILD_BENCH=OFF
	$(SANITIZE_ENV) cmake --build $(SANITIZE_BUILD) -j $(JOBS)

test-sanitize: build-sanitize
	cd $(SANITIZE_BUILD) && $(SANITIZE_ENV) ctest -j $(JOBS) --output-on-failure -LE 'long|slurm'

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
