# Thin wrapper over CMake/CTest so the two everyday commands are
# `make run` and `make test`. All real build logic lives in CMakeLists.txt.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

BUILD_DIR    := build
SANITIZE_DIR := build-sanitize
JOBS         ?= 2
PYTHON       := /usr/bin/python3
PYTEST_ARGS  ?=

# BREEZE_WERROR (warnings are errors) is on for the test targets and CI and
# left as configured otherwise: `make run` neither turns it on for someone
# trying Breeze with another compiler nor flips an existing build dir's cache
# (which would rebuild everything). `make build WERROR=ON` sets it by hand.
WERROR       ?=
werror_flag   = $(if $(WERROR),-DBREEZE_WERROR=$(WERROR))

# Sanitizer runtime options for the whole sanitize run (unit tests and the
# servers the API tests start): fail on the first report, with a stack.
SANITIZE_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

.PHONY: all deps build build-sanitize web test test-sanitize run check-format lint deb clean distclean

all: build

# Cheap check first; the apt-get path runs only when something is missing.
deps:
	@scripts/install-deps --check || scripts/install-deps

build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(werror_flag)
	cmake --build $(BUILD_DIR) -j$(JOBS)

build-sanitize: deps
	cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBREEZE_SANITIZE=ON $(werror_flag)
	cmake --build $(SANITIZE_DIR) -j$(JOBS)

# The web dashboard alone (web/src -> web/dist; every build does it too).
web:
	$(PYTHON) scripts/build-web

# Unit tests, then the API tests; both always run so one report shows
# everything, and the pytest summary is the last line printed.
define run_tests
	rc=0; \
	echo "== unit tests (ctest, $(1))"; \
	$(2) ctest --test-dir $(1) --output-on-failure || rc=$$?; \
	echo "== API tests (pytest, BREEZE_BUILD_DIR=$(abspath $(1)))"; \
	$(2) BREEZE_BUILD_DIR=$(abspath $(1)) $(PYTHON) -m pytest -q $(PYTEST_ARGS) tests/api || rc=$$?; \
	exit $$rc
endef

# Target-specific: also in effect for the build prerequisites.
test test-sanitize: WERROR = ON

test: build
	@$(call run_tests,$(BUILD_DIR),env)

test-sanitize: build-sanitize
	@$(call run_tests,$(SANITIZE_DIR),env $(SANITIZE_ENV))

run: build
	scripts/dev-run

# clang-format --dry-run -Werror over src/ tests/ bench/ (.clang-format).
check-format:
	scripts/check-format

# cppcheck on src/, shellcheck on scripts/ and deploy/ (CI runs it).
lint: deps
	scripts/lint

# breeze-server and breeze-agent .deb files in build-deb/ (a Release build;
# docs/deploy.md, "Debian packages").
deb: deps
	scripts/build-deb

clean:
	rm -rf $(BUILD_DIR) $(SANITIZE_DIR) build-deb

# Also drops the local dev database, Redis and agent state made by `make run`.
distclean: clean
	scripts/dev-services stop var
	rm -rf var
