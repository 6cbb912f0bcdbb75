# nvrfs — secure recording storage for NVR/DVR.
#   make          build nvrfsd, nvrctl and the unit tests into build/
#   make demo     install dependencies, build, mount a demo set, record, show status
#   make test     install dependencies, build, run every test (units + real FUSE mounts)
CXX      ?= g++
# -g1: line tables and symbols (what profiles and backtraces use); the build
# takes a fifth less time than with -g. OPTFLAGS="-O2 -g" for a debugger.
OPTFLAGS ?= -O2 -g1
CXXFLAGS ?= $(OPTFLAGS)
SANFLAGS ?=
CXXFLAGS += $(SANFLAGS) -std=c++20 -Wall -Wextra -Wno-missing-field-initializers -pthread -MMD -MP \
            -Iuserspace/lib $(shell pkg-config --cflags fuse3 openssl fmt blkid libcryptsetup libclamav libudev 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs openssl fmt libcurl tss2-esys tss2-tctildr tss2-mu tss2-rc 2>/dev/null) -pthread
DEVLIBS  := $(shell pkg-config --libs blkid libcryptsetup libclamav libudev 2>/dev/null)
FUSELIBS := $(shell pkg-config --libs fuse3 2>/dev/null)

B := build
# The vendor key signs installed manifests; its public half is compiled in.
# Releases: make VENDOR_KEY=/secure/vendor.key install. Without one, a
# development key is made in build/ (never committed).
VENDOR_KEY ?= $(B)/dev-vendor.key
CXXFLAGS += -I$(B)

# Sources are compiled a directory at a time: each directory's files, at most
# UNITY_FILES of them, are #included into one unit ($(B)/unity/DIR-K.cpp), so
# the standard library, fmt and nlohmann/json are parsed and their templates
# compiled once per unit instead of once per file: a clean build on 2 cores
# took 98 s against 189 (189 CPU-s against 369), the ASan one 115 s against
# 207. UNITY=0 compiles file by file: quicker after a one-file edit, and it
# finds a file that leans on an include of a file before it in its unit.
# File-local names must differ within a directory; a directory's code lands
# in its own objects, which keeps device/ (libblkid, libclamav) out of nvrfsd.
UNITY       ?= 1
UNITY_FILES ?= 10
take = $(wordlist 1,$(2),$(1))
drop = $(wordlist $(words x $(call take,$(1),$(2))),$(words $(1)),$(1))
# $(call unity_objs,NAME,SOURCES[,COUNTER]): one object per UNITY_FILES
# sources, $(B)/unity/NAME-K.o; UNITY_SRC_NAME-K lists what unit K includes
unity_objs = $(if $(2),$(eval UNITY_SRC_$(1)-$(words x $(3)) := $(call take,$(2),$(UNITY_FILES)))$(B)/unity/$(1)-$(words x $(3)).o $(call unity_objs,$(1),$(call drop,$(2),$(UNITY_FILES)),x $(3)))
# $(call objs,DIR): the objects of DIR's sources
objs = $(if $(filter 1,$(UNITY)),$(call unity_objs,$(subst /,-,$(1)),$(sort $(wildcard $(1)/*.cpp))),$(patsubst %.cpp,$(B)/%.o,$(wildcard $(1)/*.cpp)))

LIB_OBJ  := $(foreach d,$(sort $(patsubst %/,%,$(dir $(wildcard userspace/lib/*/*.cpp)))),$(call objs,$(d)))
LIB      := $(B)/libnvrfs.a
NVRFSD_OBJ := $(call objs,fuse)
NVRCTL_OBJ := $(call objs,userspace/nvrctl)
UNIT_OBJ   := $(call objs,tests/unit)
UNITY_CPP  := $(patsubst %.o,%.cpp,$(filter $(B)/unity/%,$(LIB_OBJ) $(NVRFSD_OBJ) $(NVRCTL_OBJ) $(UNIT_OBJ)))

DEPS := g++ make pkg-config libfuse3-dev fuse3 libssl-dev libfmt-dev nlohmann-json3-dev doctest-dev \
        libblkid-dev libcryptsetup-dev libclamav-dev libudev-dev dosfstools cryptsetup-bin udev \
        ffmpeg e2fsprogs util-linux procps python3 bc fuse3 fio gocryptfs man-db groff-base lintian systemd prometheus \
        libtss2-dev swtpm swtpm-tools tpm2-tools libcurl4-openssl-dev
# A single-node Ceph for the archive tier's tests (installed without recommends).
CEPH_DEPS := ceph-mon ceph-osd radosgw ceph-common s3cmd

.PHONY: all deps test demo demo-tpm bench clean asan fuzz
all: $(B)/nvrfsd $(B)/nvrctl $(B)/unit-tests $(B)/fuzz-parsers $(B)/release/nvrfsd $(B)/release/nvrctl

$(B)/dev-vendor.key:
	@mkdir -p $(B)
	openssl genpkey -algorithm ed25519 -out $@ 2>/dev/null && chmod 600 $@

$(B)/vendor_pub.h: $(VENDOR_KEY)
	@mkdir -p $(B)
	{ echo '// generated from the vendor key: Ed25519 public key for manifest checks'; \
	  echo 'static const char kVendorPublicKeyPem[] ='; \
	  openssl pkey -in $< -pubout | sed 's/.*/"&\\n"/'; echo ';'; } > $@.tmp && mv $@.tmp $@

$(B)/userspace/lib/product/integrity.o: $(B)/vendor_pub.h

$(B)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(B)/unity/%.o: $(B)/unity/%.cpp | $(B)/vendor_pub.h
	$(CXX) $(CXXFLAGS) -c $< -o $@

# A generated file is rewritten only when its text changes (the file's date
# is what decides what is rebuilt), as git's Makefile does with GIT-CFLAGS.
.PHONY: FORCE
FORCE:
$(UNITY_CPP): $(B)/unity/%.cpp: FORCE
	@mkdir -p $(@D); t=$$(printf '#include "$(CURDIR)/%s"\n' $(UNITY_SRC_$*)); \
	  [ "$$t" = "$$(cat $@ 2>/dev/null)" ] || printf '%s\n' "$$t" > $@

# The archive is made anew when its list of objects changes (UNITY switched,
# a source added or removed): ar only adds members, and a stale one would clash.
$(B)/libnvrfs.objs: FORCE
	@mkdir -p $(@D); [ "$(strip $(LIB_OBJ))" = "$$(cat $@ 2>/dev/null)" ] || echo "$(strip $(LIB_OBJ))" > $@

$(LIB): $(LIB_OBJ) $(B)/libnvrfs.objs
	rm -f $@ && ar rcs $@ $(LIB_OBJ)

# Build-tree programs skip the installed-manifest check; release ones enforce it.
$(B)/nvrfsd: $(NVRFSD_OBJ) $(B)/userspace/policy/build_tree.o $(LIB)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(FUSELIBS) $(LDLIBS)

$(B)/nvrctl: $(NVRCTL_OBJ) $(B)/userspace/policy/build_tree.o $(LIB)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(DEVLIBS) $(LDLIBS)

$(B)/release/nvrfsd: $(NVRFSD_OBJ) $(B)/userspace/policy/enforced.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(FUSELIBS) $(LDLIBS)

$(B)/release/nvrctl: $(NVRCTL_OBJ) $(B)/userspace/policy/enforced.o $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(DEVLIBS) $(LDLIBS)

$(B)/unit-tests: $(UNIT_OBJ) $(B)/userspace/policy/build_tree.o $(LIB)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(DEVLIBS) $(LDLIBS)

$(B)/fuzz-parsers: $(B)/tests/fuzz/fuzz_parsers.o $(B)/userspace/policy/build_tree.o $(LIB)
	$(CXX) $(CXXFLAGS) -o $@ $^ $(DEVLIBS) $(LDLIBS)

# Installs only what is missing, so repeated runs are quick.
deps:
	@missing=$$(for p in $(DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@missing=$$(for p in $(CEPH_DEPS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: deps
	$(MAKE) -j$$(nproc) all
	bash tests/run.sh

# The whole suite again with AddressSanitizer and UndefinedBehaviorSanitizer,
# from a separate build tree (build-asan/). Any report fails the test it hit.
# -Og -g1: line tables are all a report needs; -Og builds it in two thirds of
# -O1's time (3m27 against 4m59 on 2 cores, file by file; 1m55 in units) and
# runs t32 and t41 within 3%.
# A report's allocation and free stacks keep 5 frames (30 by default): each
# malloc unwinds less, t41 ran in 119 s against 140.
# ASAN_TESTS: globs of the scenarios to run (default all); CI runs the ones
# that feed hostile or broken input to the daemon and its parsers.
ASAN_TESTS ?=
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan: deps
	$(MAKE) -j$$(nproc) B=build-asan OPTFLAGS="-Og -g1" SANFLAGS="$(ASAN_FLAGS)" build-asan/nvrfsd build-asan/nvrctl build-asan/unit-tests build-asan/fuzz-parsers
	NVRFS_BUILD=build-asan NVRFS_TESTS="$(ASAN_TESTS)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:malloc_context_size=5 \
	  UBSAN_OPTIONS=print_stacktrace=1 bash tests/run.sh

# The parser fuzzer for longer than the test suite runs it (FUZZ_SECONDS).
FUZZ_SECONDS ?= 600
fuzz: $(B)/fuzz-parsers
	$(B)/fuzz-parsers tests/fuzz/corpus $(FUZZ_SECONDS)

demo: deps
	$(MAKE) -j$$(nproc) all
	bash scripts/demo.sh

# The host key sealed in a (simulated) TPM 2.0, PCR 7 and the recovery key.
demo-tpm: deps
	$(MAKE) -j$$(nproc) all
	bash scripts/demo-tpm.sh

clean:
	rm -rf $(B)

-include $(wildcard $(B)/*/*/*/*.d $(B)/*/*/*.d $(B)/*/*.d)

# btrfs-progs: compare.py --peers builds the btrfs RAID1 nvrfs is measured against.
bench: deps
	@dpkg -s btrfs-progs >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq btrfs-progs >/dev/null; }
	$(MAKE) -j$$(nproc) all
	bash bench/seqwrite.sh
	bash bench/rebuild.sh
	bash bench/backup.sh
	python3 bench/compare.py --peers

# Standard places; DESTDIR for staging (packages, tests).
PREFIX  ?= /usr
SBINDIR ?= $(PREFIX)/sbin
MANDIR  ?= $(PREFIX)/share/man
UDEVDIR ?= /lib/udev/rules.d
UNITDIR ?= /lib/systemd/system
INSTALLED := /usr/share/nvrfs/manifest /usr/share/nvrfs/manifest.sig $(UNITDIR)/nvrfsd.service $(SBINDIR)/nvrfsd $(SBINDIR)/nvrctl $(MANDIR)/man8/nvrfsd.8 $(MANDIR)/man8/nvrctl.8 \
             $(MANDIR)/man5/nvrfs.conf.5 $(UDEVDIR)/90-nvrfs-backup.rules

.PHONY: install uninstall
install: $(B)/release/nvrfsd $(B)/release/nvrctl
	install -D -s -m 0755 $(B)/release/nvrfsd $(DESTDIR)$(SBINDIR)/nvrfsd
	install -D -s -m 0755 $(B)/release/nvrctl $(DESTDIR)$(SBINDIR)/nvrctl
	install -D -m 0644 man/nvrfsd.8 $(DESTDIR)$(MANDIR)/man8/nvrfsd.8
	install -D -m 0644 man/nvrctl.8 $(DESTDIR)$(MANDIR)/man8/nvrctl.8
	install -D -m 0644 man/nvrfs.conf.5 $(DESTDIR)$(MANDIR)/man5/nvrfs.conf.5
	install -D -m 0644 udev-rules/90-nvrfs-backup.rules $(DESTDIR)$(UDEVDIR)/90-nvrfs-backup.rules
	install -D -m 0644 scripts/nvrfsd.service $(DESTDIR)$(UNITDIR)/nvrfsd.service
	install -d -m 0700 $(DESTDIR)/etc/nvrfs
	bash scripts/sign-release $(VENDOR_KEY) $(if $(DESTDIR),$(DESTDIR),/)
	@if [ -z "$(DESTDIR)" ] && command -v udevadm >/dev/null; then udevadm control --reload 2>/dev/null || true; fi
	@if [ -z "$(DESTDIR)" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))
	-rmdir $(DESTDIR)/etc/nvrfs $(DESTDIR)/usr/share/nvrfs 2>/dev/null

.PHONY: sbom
sbom: $(B)/release/nvrfsd $(B)/release/nvrctl
	python3 scripts/sbom.py $(B)/release/nvrfsd $(B)/release/nvrctl

# A Debian package of the signed installation (scripts/make-deb).
.PHONY: deb
deb: $(B)/release/nvrfsd $(B)/release/nvrctl
	bash scripts/make-deb $(B) $(VENDOR_KEY)
