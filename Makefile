# The two commands of the README: `make demo` and `make test`. Each installs what is missing,
# configures once, builds incrementally, then runs.
PRESET ?= release
BUILD := build/$(PRESET)
FUZZ_BUILD := build/fuzz
ASAN_BUILD := build/asan
TSAN_BUILD := build/tsan
# Sanitizer runs: any report fails the test (UBSan does not recover: -fno-sanitize-recover=all).
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1
JOBS ?= $(shell nproc)

.PHONY: all deps configure build k8s fuzz-build asan-build tsan-build test test-sanitize unit demo bench format clean

all: build

deps:
	@scripts/install-deps

$(BUILD)/build.ninja:
	cmake --preset $(PRESET)

$(FUZZ_BUILD)/build.ninja:
	cmake --preset fuzz

$(ASAN_BUILD)/build.ninja:
	cmake --preset asan

$(TSAN_BUILD)/build.ninja:
	cmake --preset tsan

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The lab's real kube-apiserver, etcd and kubectl (lab/k8s/build), built once per machine and
# cached under build/k8s: the lab's config source and the kube tests run against them.
k8s: deps
	@lab/k8s/build >/dev/null

fuzz-build: deps $(FUZZ_BUILD)/build.ninja
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

asan-build: deps $(ASAN_BUILD)/build.ninja
	cmake --build $(ASAN_BUILD) -j $(JOBS)

tsan-build: deps $(TSAN_BUILD)/build.ninja
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target gtest_suites

# Every test (unit, netns, e2e on the lab, fuzz, bench smoke) on the AddressSanitizer +
# UndefinedBehaviorSanitizer build: the lab's agent, gateway and CNI plugin run instrumented too,
# and any report aborts the process, which fails the test. One build keeps CI inside its budget.
test: asan-build fuzz-build k8s
	$(SAN_ENV) ctest --test-dir $(ASAN_BUILD) -j $(JOBS) --output-on-failure --timeout 600

# The unit and netns tests under ASan + UBSan and under ThreadSanitizer (a second build).
test-sanitize: asan-build tsan-build
	$(SAN_ENV) ctest --test-dir $(ASAN_BUILD) -j $(JOBS) -L 'unit|netns' --output-on-failure --timeout 600
	$(SAN_ENV) ctest --test-dir $(TSAN_BUILD) -j $(JOBS) -L 'unit|netns' --output-on-failure --timeout 600

unit: build
	ctest --test-dir $(BUILD) -j $(JOBS) -L unit --output-on-failure

# The seeds' configuration decided offline, then the lab node with real traffic.
# MODE=ebpf: the lab with the eBPF redirect (docs/modes.md); default nftables.
MODE ?= nftables
demo: build k8s
	scripts/demo $(BUILD)
	TOLLGATE_BIN_DIR=$(abspath $(BUILD)) lab/tollgate-lab demo --mode $(MODE)

bench: build
	bench/run

format:
	git ls-files '*.h' '*.cc' '*.c' | xargs clang-format -i

clean:
	rm -rf build
