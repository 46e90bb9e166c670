# The two commands of the README: `make demo` and `make test`. Each installs what is missing,
# configures once, builds incrementally, then runs.
PRESET ?= release
BUILD := build/$(PRESET)
FUZZ_BUILD := build/fuzz
JOBS ?= $(shell nproc)

.PHONY: all deps configure build fuzz-build test unit demo bench format clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	cmake --preset $(PRESET)

$(FUZZ_BUILD)/build.ninja:
	cmake --preset fuzz

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

fuzz-build: deps $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

test: build fuzz-build
	ctest --test-dir $(BUILD) -j $(JOBS) --output-on-failure --timeout 600

unit: build
	ctest --test-dir $(BUILD) -j $(JOBS) -L unit --output-on-failure

# The seeds' configuration decided offline, then the lab node with real traffic.
demo: build
	scripts/demo $(BUILD)
	TOLLGATE_BIN_DIR=$(abspath $(BUILD)) lab/tollgate-lab demo

bench: build
	bench/run

format:
	git ls-files '*.h' '*.cc' '*.c' | xargs clang-format -i

clean:
	rm -rf build
