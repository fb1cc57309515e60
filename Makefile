# Two commands: `make demo` builds the example, `make test` runs the suite.
# Both install what they need: Debian packages (as root, or via sudo) and a
# project venv in .venv. Nothing goes into the system Python.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEBS   := openssh-server openssh-client sudo qemu-system-x86 qemu-utils debootstrap debian-archive-keyring \
          fdisk ovmf mtools dosfstools syslinux syslinux-common systemd-boot-efi xorriso binutils \
          vagrant vagrant-libvirt libvirt-daemon-system libvirt-clients dnsmasq-base iptables
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo demo-ssh test deps venv bench clean

deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

venv: $(STAMP)

test: deps venv
	$(BIN)/python -m pytest tests

demo: deps venv
	$(BIN)/recipe run playbooks/examples/web.yml
	@echo; echo "artifacts:"; ls -l output/web-local/

demo-ssh: deps venv
	$(BIN)/python playbooks/examples/demo_ssh.py

bench: deps venv
	$(BIN)/python bench/task_overhead.py

clean:
	rm -rf $(VENV) output .pytest_cache
