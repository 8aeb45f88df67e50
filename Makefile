# The two commands a new user needs: `make run` and `make test`. Both install what they need.
BUILD_DIR ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CONFIG ?= examples/quickstart.yaml
# The address `make run` tells the user to try: server.listen in $(CONFIG), else the default.
RUN_LISTEN = $(or $(shell sed -n 's/^  listen: *\([^ #]*\).*/\1/p' $(CONFIG) 2>/dev/null | head -n1),127.0.0.1:8080)
# ccache: paths relative to the checkout, so a fresh clone elsewhere reuses the objects.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1

.PHONY: all bootstrap configure build run test test-unit test-integration test-asan test-tsan fuzz bench format tidy clean

all: build

bootstrap:
	@scripts/bootstrap

$(BUILD_DIR)/CMakeCache.txt: CMakeLists.txt tests/CMakeLists.txt
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

configure: bootstrap $(BUILD_DIR)/CMakeCache.txt

build: configure
	cmake --build $(BUILD_DIR) -j$(JOBS)

run: build
	@echo "Starting tandem with $(CONFIG). In another terminal, try:"
	@echo "  curl -s http://$(RUN_LISTEN)/v2/models/digits/infer -H 'content-type: application/json' -d @examples/digit.json"
	@echo
	exec $(BUILD_DIR)/tandem serve -c $(CONFIG)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 300

test-unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L 'unit|sim'

test-integration: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L integration

# Sanitizers, each in its own build directory. ASan + UBSan over the unit, sim and integration
# suites (the binaries the tests start are instrumented too); TSan over the unit suite and the
# integration tests of the threaded parts (audit writer, job journal, span exporter, batch).
SANITIZER_TARGETS = tandem tandem_unit_tests tandem_sim_tests tandem_integration_tests
test-asan: bootstrap
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_SANITIZE=address
	cmake --build build-asan -j$(JOBS) --target $(SANITIZER_TARGETS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure --timeout 600 -L 'unit|sim|integration' -E '^js\.'

TSAN_INTEGRATION = '^(JobsTest|Batch|AuditTest|TracingTest|StateLockTest)\.'
test-tsan: bootstrap
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTANDEM_SANITIZE=thread
	cmake --build build-tsan -j$(JOBS) --target tandem tandem_unit_tests tandem_integration_tests
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure --timeout 600 -L unit
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure --timeout 600 -L integration -R $(TSAN_INTEGRATION)

# libFuzzer targets (fuzz/, docs/fuzzing.md), built with clang into build-fuzz/ and each run for
# FUZZ_SECONDS on a copy of its seed corpus (build-fuzz/corpus; fuzz/corpus is never written).
# Fails when any target crashes or a sanitizer reports; the input is left in build-fuzz/artifacts.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = fuzz_v2_request fuzz_runpod_submission fuzz_config fuzz_audit_block fuzz_http_request
fuzz: bootstrap
	CC=clang CXX=clang++ cmake -S fuzz -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-fuzz -j$(JOBS) --target $(FUZZ_TARGETS)
	rm -rf build-fuzz/corpus && cp -r fuzz/corpus build-fuzz/corpus && mkdir -p build-fuzz/artifacts
	@failed=; for t in $(FUZZ_TARGETS); do \
	  echo "== $$t ($(FUZZ_SECONDS) s)"; \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build-fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/$$t- build-fuzz/corpus/$$t \
	    > build-fuzz/$$t.log 2>&1 || failed="$$failed $$t"; \
	  grep -E '^(Done|SUMMARY)|stat::number_of_executed_units' build-fuzz/$$t.log; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashed:$$failed (logs: build-fuzz/<target>.log)"; exit 1; fi

bench: build
	bench/run-all

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

tidy: configure
	clang-tidy -p $(BUILD_DIR) $$(git ls-files 'src/*.cpp')

clean:
	rm -rf $(BUILD_DIR)
