# Every target sets itself up: a fresh machine needs only Python 3.9+ and pip.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXAMPLE ?= examples/worker-behind-proxy.yaml

.PHONY: test test-core example stages lint tools clean build package image-tree image reproducible bench crossings wheels realstack

# Everything the executable is made from: a change to any of it rebuilds it (and what
# contains it), so no artefact is ever stale.
INPUTS := $(shell find provider_rke2 -type f ! -path '*/__pycache__/*' ! -name '*.pyc') \
	pyproject.toml requirements.txt README.md LICENSE build/build.py build/launcher.py build/constraints.txt

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -m venv $(VENV) >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt >&2
	@touch $@

# shellcheck and dash check the shell the provider writes, openssl makes the test CA,
# unshare, setpriv and mountpoint sandbox the node scripts, iptables checks the firewall
# cleanup against the real thing (in a network namespace of its own), systemd-analyze reads
# the unit drop-ins as systemd will; installed from the
# distribution when missing and we may (CI runs as root on Debian), saying so first.
# rsync seeds the Kairos box's persistent paths as immucore does, strace holds yip's writes
# for the spy, jq is what the Go provider's documents run; buildah builds the OCI image,
# skopeo and umoci take it apart as an image builder's tools would; groff reads the man page.
TOOLS := shellcheck:shellcheck dash:dash openssl:openssl unshare:util-linux setpriv:util-linux \
	mountpoint:util-linux iptables-restore:iptables systemd-analyze:systemd rsync:rsync strace:strace jq:jq \
	buildah:buildah umoci:umoci skopeo:skopeo groff:groff-base
tools:
	@missing=; for pair in $(TOOLS); do command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; done; \
	missing=$$(printf '%s\n' $$missing | sort -u | tr '\n' ' '); \
	[ -z "$${missing% }" ] || { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing Debian packages the tests run: $$missing" >&2; \
	    apt-get update -qq >/dev/null && apt-get install -y -qq $$missing >/dev/null; \
	  else echo "make: install $$missing (the tests run them)" >&2; exit 1; fi; }

lint: $(STAMP)
	$(BIN)/ruff check provider_rke2 tests build
	$(BIN)/ruff format --check provider_rke2 tests build
	$(BIN)/python -m mypy

test: $(STAMP) tools lint reproducible package image realstack
	tests/isolated.sh $(BIN)/python -m pytest

# The fast layer alone, while working on the rules: tests/core, the pure core's tests (no
# build, no image, no real stack; under a minute). `make test` runs them with the rest.
test-core: $(STAMP) tools
	tests/isolated.sh $(BIN)/python -m pytest tests/core

# The real Kairos programs the tests run (yip, kairos-agent, the sdk bus, the Go provider),
# built from tests/realstack's pinned modules: needs Go 1.26.6 or newer and the Go module
# proxy (the module cache is reused between runs).
REALSTACK := build/realstack/.built
realstack: $(REALSTACK)
$(REALSTACK): $(shell find tests/realstack -type f)
	tests/realstack/build.sh $(CURDIR)/build/realstack
	@touch $@

# The one-file executable (shiv, pure Python): build/agent-provider-rke2. Needs PyPI, or
# WHEELS=DIR holding every wheel and source it takes (`make wheels` fills build/wheels).
build: build/agent-provider-rke2

build/agent-provider-rke2: $(STAMP) $(INPUTS)
	@$(BIN)/python build/build.py executable

# What an offline build takes, fetched once: make wheels; make build WHEELS=build/wheels
wheels: $(STAMP)
	$(BIN)/python -m pip download --quiet --disable-pip-version-check -d build/wheels \
	  -c build/constraints.txt --no-binary pyyaml,pyrsistent -r requirements.txt
	$(BIN)/python -m pip download --quiet --disable-pip-version-check -d build/wheels \
	  -c build/constraints.txt setuptools wheel cython

# Two builds of the same commit must be the same bytes.
reproducible: build
	cp build/agent-provider-rke2 build/.first-build
	$(BIN)/python build/build.py executable
	cmp build/.first-build build/agent-provider-rke2
	rm -f build/.first-build

# What an image needs as a root tree (build/image): the executable in the providers
# directory (PROVIDERS_DIR=/usr/local/system/providers for the systemd-sysext layout), the
# node scripts, and the executable pre-extracted under /usr/lib/provider-rke2 and
# byte-compiled for every Python >= 3.9 here (PYTHONS=...), so that a boot writes nothing.
image-tree: build/agent-provider-rke2
	@$(BIN)/python build/build.py image-tree

# build/image as an OCI image: build/oci, an OCI layout holding one index for amd64 and
# arm64, reproducible (the same digest twice), with the standard labels. Needs buildah (root).
image: image-tree tools
	@$(BIN)/python build/build.py image

# build/image as one reproducible tarball (ADD build/provider-rke2-image.tar.gz /).
package: image-tree
	@$(BIN)/python build/build.py package

bench: build realstack
	$(BIN)/python build/bench.py

# How many times one typical boot calls from one module of the package into another.
crossings: $(STAMP)
	$(BIN)/python build/crossings.py

# Build the executable, then render a bundled example through it, as agent.boot would,
# and print the YIP document.
# stdout is exactly the YIP: byte for byte stages/<example>.yaml (--fresh: no node state).
# It unpacks into build/run: nothing outside the checkout.
example: build/agent-provider-rke2
	@SHIV_ROOT=$(CURDIR)/build/run $(BIN)/python build/agent-provider-rke2 render --fresh $(EXAMPLE)

# Regenerate the golden renders of every example (reviewed in git diffs).
stages: $(STAMP)
	$(BIN)/python tests/golden.py --write

clean:
	rm -rf $(VENV) build/agent-provider-rke2 build/agent-provider-rke2.inputs build/image build/oci build/run \
	  build/.buildah-* build/work build/*.tar.gz build/Containerfile build/realstack .pytest_cache .ruff_cache
