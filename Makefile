# Thin wrapper: the README's two commands. Both install missing Debian packages first.
BUILD ?= build
JOBS ?= 2

.PHONY: deps build run test bench clean

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

bench: build
	$(BUILD)/bench/bench_translate

clean:
	rm -rf $(BUILD)
