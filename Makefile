# Every target sets itself up: a fresh machine needs only Python 3.9+ and pip.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXAMPLE ?= examples/worker-behind-proxy.yaml

.PHONY: test example stages lint tools clean build package image-tree reproducible bench

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# shellcheck and dash check the shell the provider writes, openssl makes the test CA,
# unshare, setpriv and mountpoint sandbox the node scripts, iptables checks the firewall
# cleanup against the real thing (in a network namespace of its own), systemd-analyze reads
# the unit drop-ins as systemd will; installed from the
# distribution when missing and we may (CI runs as root on Debian), saying so first.
TOOLS := shellcheck:shellcheck dash:dash openssl:openssl unshare:util-linux setpriv:util-linux \
	mountpoint:util-linux iptables-restore:iptables systemd-analyze:systemd
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

test: $(STAMP) tools lint reproducible package image-tree
	$(BIN)/python -m pytest

# The one-file executable (shiv, pure Python): build/agent-provider-rke2.
build: $(STAMP)
	$(BIN)/python build/build.py executable

# Two builds of the same commit must be the same bytes.
reproducible: build
	cp build/agent-provider-rke2 build/.first-build
	$(BIN)/python build/build.py executable
	cmp build/.first-build build/agent-provider-rke2
	rm -f build/.first-build

# What an image needs (system/providers/, opt/rke2/scripts/) as a tarball, plus a FROM scratch Containerfile.
package: $(STAMP)
	$(BIN)/python build/build.py package

# The package as a root tree with the executable pre-extracted, so that a boot writes nothing.
image-tree: $(STAMP)
	$(BIN)/python build/build.py image-tree

bench: build
	$(BIN)/python build/bench.py

# Build the executable, then render a bundled example through it, as agent.boot would,
# and print the YIP document.
example: build
	$(BIN)/python build/agent-provider-rke2 render $(EXAMPLE)

# Regenerate the golden renders of every example (reviewed in git diffs).
stages: $(STAMP)
	$(BIN)/python tests/golden.py --write

clean:
	rm -rf $(VENV) build/agent-provider-rke2 build/image build/work build/*.tar.gz build/Containerfile .pytest_cache .ruff_cache
