# tern - build, run and test.  `make run` and `make test` are the quick start.

PKGS := libevent libevent_openssl libevent_pthreads libcares jansson libsodium sqlite3 openssl
CC ?= cc
BUILD ?= build
CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wno-unused-parameter -fno-strict-aliasing -Isrc -MMD -MP -pthread
SAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

ifeq ($(SAN),1)
BUILD := build-asan
OPT := -O1 -g $(SAN_FLAGS)
LDSAN := $(SAN_FLAGS)
else
OPT := -O2 -g
LDSAN :=
endif

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS := $(CFLAGS_BASE) $(OPT) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS = $(PKG_LIBS) -lpthread -lm

LIB_SRCS := $(sort $(wildcard src/*/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
PYTEST := /usr/bin/python3 -m pytest

# Keep the unit tests' objects: they are not throw-away intermediates.
.SECONDARY:

.PHONY: all deps run test test-unit test-integration test-asan check format lint clean fuzz bench security

all: $(BUILD)/ternd $(BUILD)/ternctl

deps:
	@sh scripts/deps.sh

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtern.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/ternd: $(BUILD)/obj/src/ternd.o $(BUILD)/libtern.a
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

$(BUILD)/ternctl: $(BUILD)/obj/src/ternctl.o $(BUILD)/libtern.a
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libtern.a
	@mkdir -p $(dir $@)
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

# Starts ternd in the foreground with the built-in defaults.
run: deps all
	@echo "ternd: SMTP on 127.0.0.1:2525, submission 127.0.0.1:2587, data in ./tern-data"
	@echo "add a domain and a user:  build/ternctl domain add example.org"
	@echo "                          echo secret | build/ternctl user add bob@example.org"
	$(BUILD)/ternd

test-unit: $(UNIT_BINS)
	@sh tests/unit/run.sh $(UNIT_BINS)

test-integration: all
	TERN_BUILD=$(abspath $(BUILD)) $(PYTEST) -q -ra tests/integration $(PYTEST_ARGS)

# The whole suite, then once more under AddressSanitizer + UBSan.
test: deps
	$(MAKE) test-unit test-integration
	$(MAKE) SAN=1 test-unit test-integration

# tern and a private Postfix side by side (smtp-source, smtp-sink, dnsmasq);
# writes docs/performance.md.  BENCH_QUICK=1 for a short smoke run.
bench: deps all
	TERN_BUILD=$(abspath $(BUILD)) bench/run.sh

# Outside scanners against a fresh ternd: testssl.sh on submission and
# smtps (no HIGH/CRITICAL finding), nmap's smtp scripts (no open relay, no
# user enumeration).
security: deps all
	TERN_BUILD=$(abspath $(BUILD)) scripts/security.sh

# libFuzzer targets for every parser of network and file input (clang);
# FUZZ_SECONDS per target, crashes and sanitizer reports fail the run.
FUZZ_SECONDS ?= 60
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

# clang-tidy (checks in .clang-tidy) and cppcheck over src/; any finding fails.
lint: deps
	scripts/lint.sh

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h')

clean:
	rm -rf build build-asan

-include $(LIB_OBJS:.o=.d) $(BUILD)/obj/src/ternd.d $(BUILD)/obj/src/ternctl.d $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/obj/tests/unit/%.d)
