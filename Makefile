# Thin wrapper: the README's two commands. Both install missing Debian packages first.
BUILD ?= build
JOBS ?= 2

.PHONY: deps build run test test-long golden bless bench clean

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

# Regression goldens (docs/regression.md): `make golden` checks every results/golden/*.json
# (the ctest label golden does the same); `make bless` reruns every example and the default
# run and rewrites their goldens from the runs, printing what changed.
GOLDEN = cmake -DIOMMUSIM=$(BUILD)/iommusim -DSOURCE_DIR=$(CURDIR) -DOUT_DIR=$(BUILD)/golden

golden: build
	$(GOLDEN) -DMODE=check -P scripts/golden.cmake

bless: build
	$(GOLDEN) -DMODE=bless -P scripts/golden.cmake

bench: build
	$(BUILD)/bench/bench_translate

clean:
	rm -rf $(BUILD)
