# The two commands a new user needs: `make run` and `make test`. Both install what they need.
BUILD_DIR ?= build
JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CONFIG ?= examples/quickstart.yaml

.PHONY: all bootstrap configure build run test test-unit test-integration bench format tidy clean

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
	@echo "  curl -s http://127.0.0.1:8080/v2/models/digits/infer -H 'content-type: application/json' -d @examples/digit.json"
	@echo
	exec $(BUILD_DIR)/tandem serve -c $(CONFIG)

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 300

test-unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L 'unit|sim'

test-integration: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L integration

bench: build
	bench/run-all

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

tidy: configure
	clang-tidy -p $(BUILD_DIR) $$(git ls-files 'src/*.cpp')

clean:
	rm -rf $(BUILD_DIR)
