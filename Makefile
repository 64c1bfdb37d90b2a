# wsqueue: one entry point for building, testing, running the demo and installing.
#   make            release build of libwsqueue.so / libwsqueue.a
#   make demo       chat server + web page on http://127.0.0.1:$(DEMO_PORT)/ (DEMO_PORT=9001)
#   make demo TLS=1 the same over https:// and wss://, with a local CA and certificate
#                   made once into build/tls/ (trust build/tls/ca.pem in the browser)
#   make test       every test in every language (installs what the tests need)
#   make header     regenerate include/wsqueue.h from src/ffi (check-header diffs it)
#   make install PREFIX=/usr/local [DESTDIR=...]   (does not run cargo once `make` has)

PREFIX   ?= /usr/local
CARGO    ?= cargo
CC       ?= cc
BUILD    := build
LIBDIR   := target/release
CFLAGS   ?= -O2 -g -Wall -Wextra -Werror -std=c11 -D_POSIX_C_SOURCE=200809L
LDLIBS   := -lpthread -ldl -lm
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR    := $(firstword $(subst ., ,$(VERSION)))
EXAMPLES := $(BUILD)/echo_server $(BUILD)/chat_server
DEMO_PORT ?= 9001
# The tests' Python packages live here, never in the machine's Python.
VENV     := $(CURDIR)/.venv

.PHONY: deps all lib examples demo test test-rust test-c test-interop test-python test-go \
        lint header check-header install uninstall clean bench

all: lib

# Installs the test suites' dependencies (idempotent).
deps:
	bash tests/deps.sh

# The shared library's SONAME is libwsqueue.so.$(MAJOR): the link in target/release
# lets programs linked in this tree (with an rpath) find it under that name.
lib:
	$(CARGO) build --release --lib
	ln -sf libwsqueue.so $(LIBDIR)/libwsqueue.so.$(MAJOR)

# Built only when missing, so `sudo make install` after `make` never needs cargo.
$(LIBDIR)/libwsqueue.so $(LIBDIR)/libwsqueue.a:
	$(MAKE) lib

# Examples link the shared library, found at run time through an rpath.
$(BUILD)/%: examples/c/%.c include/wsqueue.h lib
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -Iinclude $< -o $@ -L$(LIBDIR) -lwsqueue -Wl,-rpath,$(abspath $(LIBDIR)) $(LDLIBS)

examples: $(EXAMPLES)

# The server prints its URL once it is listening (a busy port gives an error instead).
# TLS=1: https:// and wss:// with the certificate below.
ifeq ($(TLS),1)
demo: $(BUILD)/chat_server $(BUILD)/tls/server.pem
	./$(BUILD)/chat_server $(DEMO_PORT) --tls $(BUILD)/tls/server.pem $(BUILD)/tls/server.key examples/web
else
demo: $(BUILD)/chat_server
	./$(BUILD)/chat_server $(DEMO_PORT) examples/web
endif

# A throwaway CA (ca.pem) and a certificate for localhost and 127.0.0.1 that it
# signed (server.pem, server.key), made with rcgen by examples/tls/make_certs.rs; kept
# across runs so that a browser told to trust ca.pem keeps trusting the demo.
$(BUILD)/tls/server.pem:
	$(CARGO) run --quiet --example make_certs -- $(BUILD)/tls

test: deps lint test-rust test-c test-interop test-go test-python
	@echo "make test: all suites passed"

test-rust:
	$(CARGO) test --all-targets

test-c: lib
	bash tests/c/run.sh

test-interop: export PATH := $(VENV)/bin:$(PATH)
test-interop: examples
	bash tests/interop/run.sh

test-go: lib
	bash bindings/go/run-tests.sh

# pip-installs bindings/python into .venv (cargo builds the library it bundles),
# then mypy --strict, pytest, and a wheel installed where cargo is absent.
test-python:
	bash bindings/python/run-tests.sh

lint: check-header
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# The header is a checked-in artifact; build.rs writes it only when asked.
header:
	WSQ_WRITE_HEADER=1 $(CARGO) build --lib

# Fails when the checked-in header differs from a fresh generation, or declares a
# type that is not wsq_-prefixed (a C program's own `Limits` must not clash).
check-header: header
	@git diff --exit-code -- include/wsqueue.h || \
	  { echo "include/wsqueue.h is out of date: commit the regenerated header"; exit 1; }
	@bad=$$(grep -nE '^(typedef|struct|enum|union)' include/wsqueue.h | \
	        grep -vE '\b(wsq_[a-z_]+_t)\b|typedef struct \{' ); \
	  if [ -n "$$bad" ]; then echo "unprefixed type in include/wsqueue.h:"; echo "$$bad"; exit 1; fi
	@bad=$$(grep -nE '^#define ' include/wsqueue.h | grep -vE '^[0-9]+:#define (WSQ_|WSQUEUE_H)'); \
	  if [ -n "$$bad" ]; then echo "unprefixed macro in include/wsqueue.h:"; echo "$$bad"; exit 1; fi

# pkg-config file for the PREFIX of this install (regenerated every time).
install: $(LIBDIR)/libwsqueue.so $(LIBDIR)/libwsqueue.a
	@mkdir -p $(BUILD)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' wsqueue.pc.in > $(BUILD)/wsqueue.pc
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/wsqueue.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(LIBDIR)/libwsqueue.so $(DESTDIR)$(PREFIX)/lib/libwsqueue.so.$(VERSION)
	ln -sf libwsqueue.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libwsqueue.so.$(MAJOR)
	ln -sf libwsqueue.so.$(MAJOR) $(DESTDIR)$(PREFIX)/lib/libwsqueue.so
	install -m 644 $(LIBDIR)/libwsqueue.a $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(BUILD)/wsqueue.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/include/wsqueue.h $(DESTDIR)$(PREFIX)/lib/libwsqueue.so \
	      $(DESTDIR)$(PREFIX)/lib/libwsqueue.so.$(MAJOR) $(DESTDIR)$(PREFIX)/lib/libwsqueue.so.$(VERSION) \
	      $(DESTDIR)$(PREFIX)/lib/libwsqueue.a $(DESTDIR)$(PREFIX)/lib/pkgconfig/wsqueue.pc

bench:
	bash bench/run.sh

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
