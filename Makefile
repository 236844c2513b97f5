# elearn -- build, run, test and benchmark.
#
#   make            build build/elearn-fcgi and build/elearnctl
#   make run        install what is missing, build, serve on http://127.0.0.1:8080
#   make test       install what is missing, build, run every test
#   make bench      wrk benchmarks into docs/benchmarks.md
#   make fuzz       every libFuzzer target for FUZZ_SECONDS (default 60) each
#   make lint       clang-tidy, scan-build, cppcheck: non-zero on any finding
#   make format     reformat the C sources (clang-format, .clang-format)
#   make format-check   non-zero when any C source is not formatted
#
# Warnings are errors (-Werror); packagers building on another compiler can
# opt out with WERROR=0.
#
# Sanitizer builds live in their own trees (build/asan, build/tsan) and are
# built by recursive make with B=... SAN=...; the rules below are the same
# for every tree.

CC      ?= cc
B       ?= build
OPT     ?= -O2 -g
SAN     ?=
WERROR  ?= 1

PKGS := fcgi hiredis libmongoc-1.0 libbson-1.0 json-c libjwt sqlite3 libargon2 libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CUNIT_LIBS := $(shell pkg-config --libs cunit 2>/dev/null)

WARN := -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wwrite-strings -Wno-format-nonliteral -fno-common
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(SAN) -pthread -iquote lib -iquote tests -iquote app -iquote $(B)/gen $(PKG_CFLAGS) -MMD -MP $(CFLAGS)
LDFLAGS_ALL = $(SAN) -pthread $(LDFLAGS)
LIBS := $(PKG_LIBS) -lm

LIB_SRC  := $(wildcard lib/*/*.c)
APP_SRC  := $(filter-out app/ctl.c,$(wildcard app/*.c))
CTL_SRC  := app/ctl.c
TEST_SRC := $(wildcard tests/*.c tests/*/*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
APP_OBJ  := $(APP_SRC:%.c=$(B)/%.o)
CTL_OBJ  := $(CTL_SRC:%.c=$(B)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(B)/%.o)

SAN_ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SAN_TSAN := -fsanitize=thread
# libFuzzer (Debian's clang): the library is built instrumented in its own
# tree; each target in fuzz/ links the parser it feeds.
SAN_FUZZ := -fsanitize=address,undefined,fuzzer-no-link -fno-sanitize-recover=all \
            -fno-omit-frame-pointer
FUZZ_TARGETS := fcgi query course_input auth_body jwt env access_log
FUZZ_SECONDS ?= 60

.PHONY: all deps run test unit unit-asan unit-tsan e2e bench fuzz fuzz-build clean format format-check lint deb deploy-check
.DEFAULT_GOAL := all

all: $(B)/elearn-fcgi $(B)/elearnctl

# The OpenAPI document is built into the responder (app/openapi.c, .incbin).
$(B)/app/openapi.o: docs/openapi.json

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# ---- build identity (issue 11): VERSION and the git commit, for /metrics
# and the Debian package. buildinfo.h is rewritten only when it changes, so
# only app/version.c is rebuilt on a new commit.
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
BUILD_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

$(B)/gen/buildinfo.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define EL_BUILD_VERSION "%s"\n#define EL_BUILD_COMMIT "%s"\n' '$(VERSION)' '$(BUILD_COMMIT)' >$@.tmp
	@cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@

$(B)/app/version.o: $(B)/gen/buildinfo.h

FORCE:

$(B)/libel.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/elearn-fcgi: $(APP_OBJ) $(B)/libel.a
	$(CC) $(LDFLAGS_ALL) -o $@ $(APP_OBJ) $(B)/libel.a $(LIBS)

$(B)/elearnctl: $(CTL_OBJ) $(B)/libel.a
	$(CC) $(LDFLAGS_ALL) -o $@ $(CTL_OBJ) $(B)/libel.a $(LIBS)

# app/fcgi.c and app/config_check.c are pure (no socket, no app state):
# their suites link them directly.
UNIT_APP_OBJ := $(B)/app/fcgi.o $(B)/app/config_check.o
$(B)/unit-tests: $(TEST_OBJ) $(UNIT_APP_OBJ) $(B)/libel.a
	$(CC) $(LDFLAGS_ALL) -o $@ $(TEST_OBJ) $(UNIT_APP_OBJ) $(B)/libel.a $(LIBS) $(CUNIT_LIBS)

$(B)/donothing-fcgi: bench/donothing.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS)

$(B)/l1-bench: bench/l1_bench.c $(B)/libel.a
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libel.a $(LIBS)

$(B)/l1-footprint: bench/l1_footprint.c $(B)/libel.a
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libel.a $(LIBS) -lm

$(B)/bus-bench: bench/bus_bench.c $(B)/libel.a
	$(CC) $(CFLAGS_ALL) -o $@ $< $(B)/libel.a $(LIBS)
$(B)/minimal-fcgi: bench/minimal.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $<

$(B)/fuzz-%: fuzz/%.c $(B)/libel.a $(B)/app/fcgi.o
	$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -o $@ $< $(B)/app/fcgi.o $(B)/libel.a $(LIBS)

fuzz-build:
	@$(MAKE) --no-print-directory B=build/fuzz CC=clang OPT="-O1 -g" SAN="$(SAN_FUZZ)" \
		$(FUZZ_TARGETS:%=build/fuzz/fuzz-%)

# Longer fuzzing (make test runs the same targets for a few seconds each).
fuzz: fuzz-build
	sh tests/fuzz.sh build/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

deps:
	@sh scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run.sh

# Formatting, then unit and concurrency tests, plain and under each sanitizer,
# the fuzz targets (bounded), the deployment checks, then the
# end-to-end suites through real nginx, Apache, Redis, Sentinel and Chromium.
test: deps
	@$(MAKE) --no-print-directory format-check
	@$(MAKE) --no-print-directory all $(B)/unit-tests
	@$(MAKE) --no-print-directory B=build/asan OPT="-O1 -g" SAN="$(SAN_ASAN)" build/asan/unit-tests
	@$(MAKE) --no-print-directory B=build/tsan OPT="-O1 -g" SAN="$(SAN_TSAN)" build/tsan/unit-tests
	@$(MAKE) --no-print-directory fuzz-build
	sh tests/run-unit.sh $(B)/unit-tests
	sh tests/run-unit.sh build/asan/unit-tests
	sh tests/run-unit.sh build/tsan/unit-tests
	sh tests/fuzz.sh build/fuzz 3 $(FUZZ_TARGETS)
	sh tests/deploy/check.sh $(B)
	sh tests/e2e/run.sh $(B)

unit: all $(B)/unit-tests
	sh tests/run-unit.sh $(B)/unit-tests

# The unit tests under AddressSanitizer + UBSan, and under ThreadSanitizer.
unit-asan:
	@$(MAKE) --no-print-directory B=build/asan OPT="-O1 -g" SAN="$(SAN_ASAN)" build/asan/unit-tests
	sh tests/run-unit.sh build/asan/unit-tests

unit-tsan:
	@$(MAKE) --no-print-directory B=build/tsan OPT="-O1 -g" SAN="$(SAN_TSAN)" build/tsan/unit-tests
	sh tests/run-unit.sh build/tsan/unit-tests

e2e: all
	sh tests/e2e/run.sh $(B)

bench: deps
	@$(MAKE) --no-print-directory all $(B)/donothing-fcgi $(B)/minimal-fcgi $(B)/l1-bench \
		$(B)/l1-footprint $(B)/bus-bench
	sh bench/run.sh $(B)

# ---- deployment (issue 11): the Debian package and its checks ---------------
# make deb: build/deb/elearn_<VERSION>_<arch>.deb (scripts/mkdeb.sh).
deb: all
	@sh scripts/mkdeb.sh $(B) $(B)/deb

# The package, lintian, its contents, a throwaway dpkg root, systemd-analyze
# verify/security, the packaged configuration (tests/deploy/check.sh).
deploy-check: all
	sh tests/deploy/check.sh $(B)

clean:
	rm -rf build

FORMAT_SRC = $(wildcard app/*.c app/*.h lib/*/*.c lib/*/*.h tests/*.c tests/*.h tests/*/*.c bench/*.c fuzz/*.c)

format:
	clang-format -i $(FORMAT_SRC)

format-check:
	clang-format --dry-run -Werror $(FORMAT_SRC)

lint:
	sh scripts/lint.sh

-include $(shell find build -name '*.d' -type f 2>/dev/null)
