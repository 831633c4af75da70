# edgemail - top-level, non-recursive Makefile.
#
#   make            build everything into bin/ (bin-san/ with SANITIZE)
#   make run        install missing packages, build, start the dev stack
#   make check      install missing packages, build, run every test
#   make bench      measure throughput and latency (prints a table)
#   make lint       banned functions, cppcheck
#   make fuzz       libFuzzer targets (clang)
#   make install    programs, systemd units and docs (PREFIX, DESTDIR)
#
# Switches: WERROR=1 (warnings are errors, as in CI),
#           SANITIZE=address,undefined (build-san/, bin-san/; run the tests
#           on them with EDGEMAIL_BIN=bin-san tests/run.sh).

CC	?= cc
PKGS	 = libmicrohttpd openssl jansson libcurl opendkim libclamav hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(filter-out libclamav,$(PKGS)) 2>/dev/null)
# libclamav is not linked: lib/scan.c loads it (lib/dynload.h) in the
# processes that scan themselves, and the API loads libcurl only for
# rspamd; each by the file name of the library built against.
soname	 = $(shell objdump -p "$$(pkg-config --variable=libdir $(1) 2>/dev/null)/$(1).so" 2>/dev/null | awk '$$1 == "SONAME" { print $$2 }')
SONAMES	:= -DCLAMAV_SONAME='"$(call soname,libclamav)"' \
	   -DCURL_SONAME='"$(call soname,libcurl)"'

# -Wno-format-truncation: bounded snprintf that may cut is how this code
# copies strings on purpose (STYLE.md); gcc's guess depends on inlining and
# differs between -O2 and sanitizer builds.
WARN	 = -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes \
	   -Wmissing-prototypes -Wpointer-arith -Wvla -Wundef \
	   -Wno-missing-field-initializers -Wno-format-truncation
CFLAGS	?= -O2 -g
CFLAGS	+= -std=c11 -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
	   -fPIE $(WARN) -I. $(PKG_CFLAGS) $(SONAMES)
# --as-needed: a program maps only the libraries it calls (edgemailctl
# has no libmicrohttpd, the API no libcurl unless rspamd is configured).
LDFLAGS	+= -pie -Wl,-z,relro,-z,now -Wl,--as-needed
LDLIBS	+= $(PKG_LIBS) -lpthread -lm -ldl

BUILD	 = build
BIN	 = bin
ifeq ($(WERROR),1)
CFLAGS	+= -Werror
endif
ifneq ($(SANITIZE),)
CFLAGS	+= -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS	+= -fsanitize=$(SANITIZE)
BUILD	 = build-san
BIN	 = bin-san
endif

# The shared library: lib/, the LMTP client, the auth layer.
CORE_SRC := $(wildcard lib/*.c) $(filter-out lmtp/lmtp-send.c,$(wildcard lmtp/*.c)) \
	    $(wildcard auth/*.c)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
CORE_LIB := $(BUILD)/libedgemail.a

API_SRC    := $(wildcard api/*.c)
SUBMIT_SRC := $(wildcard smtp-out/*.c)
CTL_SRC    := $(wildcard ctl/*.c)
SCAND_SRC  := $(wildcard scand/*.c)
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
BENCH_SRC  := $(wildcard tests/bench/*.c)

PROGS	:= $(BIN)/lmtp-send
ifneq ($(API_SRC),)
PROGS	+= $(BIN)/edgemail-api
endif
ifneq ($(SUBMIT_SRC),)
PROGS	+= $(BIN)/edgemail-submit
endif
ifneq ($(CTL_SRC),)
PROGS	+= $(BIN)/edgemailctl
endif
ifneq ($(SCAND_SRC),)
PROGS	+= $(BIN)/edgemail-scand
endif
ifneq ($(BENCH_SRC),)
PROGS	+= $(BIN)/edgemail-bench
endif
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BIN)/tests/%)

.PHONY: all run check bench lint fuzz clean deps unit install uninstall
all: $(PROGS) $(UNIT_BINS)

deps:
	@./deploy/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# The global Sieve script, as a C string for edgemailctl dovecot-config
# (one source: deploy/sieve/junk.sieve).
$(BUILD)/junk_sieve.c: deploy/sieve/junk.sieve
	@mkdir -p $(dir $@)
	{ echo '/* made from $< by the Makefile */'; \
	  echo 'extern const char junk_sieve[];'; \
	  echo 'const char junk_sieve[] ='; \
	  awk '{ gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); \
	      printf "\"%s\\n\"\n", $$0 }' $<; echo ';'; } > $@
$(BUILD)/junk_sieve.o: $(BUILD)/junk_sieve.c
	$(CC) $(CFLAGS) -c -o $@ $<

$(CORE_LIB): $(CORE_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BIN)/lmtp-send: $(BUILD)/lmtp/lmtp-send.o $(CORE_LIB)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/edgemail-api: $(API_SRC:%.c=$(BUILD)/%.o) $(CORE_LIB)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/edgemail-submit: $(SUBMIT_SRC:%.c=$(BUILD)/%.o) $(CORE_LIB)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/edgemailctl: $(CTL_SRC:%.c=$(BUILD)/%.o) $(BUILD)/junk_sieve.o \
    $(CORE_LIB)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/edgemail-scand: $(SCAND_SRC:%.c=$(BUILD)/%.o) $(CORE_LIB)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/edgemail-bench: $(BENCH_SRC:%.c=$(BUILD)/%.o) $(CORE_LIB)
	@mkdir -p $(BIN)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BIN)/tests/%: $(BUILD)/tests/unit/%.o $(CORE_LIB)
	@mkdir -p $(BIN)/tests
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# The two commands of the README: each installs what is missing first.
run: deps
	@$(MAKE) --no-print-directory all
	@./deploy/stack.sh run

check: deps
	@$(MAKE) --no-print-directory all
	@./tests/run.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@./tests/bench/run.sh

BANNED	= strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol
lint:
	@! grep -nE '\<($(BANNED))[[:space:]]*\(' $(CORE_SRC) $(API_SRC) \
	    $(SUBMIT_SRC) $(CTL_SRC) $(SCAND_SRC) lmtp/lmtp-send.c | grep -v 'snprintf\|vsnprintf' \
	    || { echo "lint: banned function (see STYLE.md)"; exit 1; }
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
	    --inline-suppr --suppress=missingIncludeSystem -I. \
	    lib lmtp auth api smtp-out ctl scand

FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
fuzz:
	@mkdir -p bin/fuzz
	@for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
	  echo "clang $$n"; \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
	    $(PKG_CFLAGS) $(SONAMES) \
	    -o bin/fuzz/$$n $$f $(CORE_SRC) $(PKG_LIBS) -lpthread -lm -ldl \
	    || exit 1; done

clean:
	rm -rf bin bin-san build build-san

# A server install (README, "Running it on a server"): the programs, the
# systemd units of deploy/systemd with these paths filled in, the docs.
# Nothing is started and no user is made here.
PREFIX		?= /usr/local
BINDIR		?= $(PREFIX)/bin
DOCDIR		?= $(PREFIX)/share/doc/edgemail
UNITDIR		?= /etc/systemd/system
STATE_DIR	?= /var/lib/edgemail
CONF		?= $(STATE_DIR)/edgemail.conf
EDGEMAIL_USER	?= edgemail
MAIL_OWNER	?= vmail
DOVECOT_GROUP	?= dovecot
INSTALL_PROGS	 = edgemail-api edgemail-submit edgemail-scand edgemailctl \
		   lmtp-send
UNITS		 = $(notdir $(wildcard deploy/systemd/*.service \
		   deploy/systemd/*.timer deploy/systemd/*.target))

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/examples
	install -m 0755 $(addprefix $(BIN)/,$(INSTALL_PROGS)) $(DESTDIR)$(BINDIR)
	for u in $(UNITS); do \
		sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
		    -e 's|@CONF@|$(CONF)|g' -e 's|@STATE_DIR@|$(STATE_DIR)|g' \
		    -e 's|@USER@|$(EDGEMAIL_USER)|g' \
		    -e 's|@MAIL_OWNER@|$(MAIL_OWNER)|g' \
		    -e 's|@DOVECOT_GROUP@|$(DOVECOT_GROUP)|g' \
		    deploy/systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(UNITDIR)/$$u.tmp $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs
	install -m 0644 deploy/cloudflared/config.yml $(DESTDIR)$(DOCDIR)/examples/cloudflared.yml
	install -m 0755 deploy/post-message.sh $(DESTDIR)$(DOCDIR)/examples

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(INSTALL_PROGS)) \
	    $(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS))
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/docs/*.md \
	    $(DESTDIR)$(DOCDIR)/examples/cloudflared.yml \
	    $(DESTDIR)$(DOCDIR)/examples/post-message.sh
	-rmdir $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/examples \
	    $(DESTDIR)$(DOCDIR)

-include $(shell find build build-san -name '*.d' 2>/dev/null)
