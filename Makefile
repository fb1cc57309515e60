# Two commands: `make demo` builds the example, `make test` runs the suite.
# Each installs only what it needs: Debian packages (as root, or via sudo) and
# a project venv in .venv with the Python extras of that target. Nothing goes
# into the system Python.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# What the example build uses: QEMU and its firmware, what a bootstrap base is
# made with (debootstrap, mke2fs, sfdisk, FAT tools, GRUB's images), the seed ISO.
DEMO_DEBS  := qemu-system-x86 qemu-utils ovmf openssh-client debootstrap debian-archive-keyring e2fsprogs \
              fdisk mtools dosfstools grub-pc-bin grub-efi-amd64-bin grub2-common xorriso
# The suite also talks to a real sshd (as root and through sudo), builds with
# the assembler (the accelerator probe), boots boxes in vagrant-libvirt, and
# converts OVAs with virt-v2v (which copies through nbdkit and nbdcopy), PXE-boots Debian's network installer,
# makes a test installer ISO (isolinux and GRUB's EFI image, busybox for its initrd), and runs a cluster's
# broker (redis-server).
TEST_DEBS  := $(DEMO_DEBS) openssh-server sudo binutils python3-apt vagrant vagrant-libvirt libvirt-daemon-system \
              libvirt-clients dnsmasq-base iptables virt-v2v nbdkit libnbd-bin initramfs-tools-core puppet-agent \
              isolinux busybox-static debian-installer-12-netboot-amd64 redis-server
# The benches compare against Packer (and ansible-playbook, from the bench extra). The corpus bench runs
# Ansible's template target, whose pipe lookup runs the target's /usr/bin/python3 on this machine with jinja2.
BENCH_DEBS := $(DEMO_DEBS) openssh-server sudo packer python3-jinja2 redis-server
SSH_DEBS   := openssh-server openssh-client

# Published Ansible content bench/ansible_compat.py measures recipe against (not part of the project).
ANSIBLE_CORPUS ?= ../shared/ansible-corpus

.PHONY: demo demo-ssh test bench venv clean

# Install the missing ones of a set, with one apt-get update (python3-venv: a fresh Debian has no venv module).
debs-%:
	@missing=""; for p in python3-venv $($(shell echo $* | tr a-z A-Z)_DEBS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

# One stamp per set of Python extras; each rebuilds when setup.cfg changes.
$(VENV)/.made:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	touch $@

$(VENV)/.installed: setup.cfg setup.py | $(VENV)/.made
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-%: setup.cfg setup.py | $(VENV)/.made
	$(BIN)/pip install -q -e '.[$*]'
	touch $@

venv: $(VENV)/.installed

demo: debs-demo $(VENV)/.installed
	$(BIN)/recipe run playbooks/examples/web.yml
	@echo; echo "artifacts:"; ls -l output/web-local/

demo-ssh: debs-ssh $(VENV)/.installed
	$(BIN)/python playbooks/examples/demo_ssh.py

# The unit tests and the integration tests that boot no guest (a local sshd, moto, ansible-playbook) wait on
# shells and sshd more than they compute: two workers, a file per worker (a file's session batch runs once).
# The tests that boot TCG guests (marked `guest` by tests/integration/conftest.py) run after, also two files at
# a time: a guest waits on its disk, the mirror and SSH round trips often enough that two of them take 1264 s
# where one at a time took 2956 s (README "Tests").
test: debs-test $(VENV)/.installed-test
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15 -m "not guest" tests/unit tests/integration
	$(BIN)/python -m pytest -n 2 --dist loadfile --durations=15 -m guest tests/integration

# Every bench that finishes in minutes; README "Benchmarks" says which prints which figure.
bench: debs-bench $(VENV)/.installed-bench
	$(BIN)/python bench/task_overhead.py
	$(BIN)/python bench/export.py
	$(BIN)/python bench/ami_upload.py
	$(BIN)/python bench/qemu_build.py
	$(BIN)/python bench/parallel.py --counts 1,2
	$(BIN)/python bench/role_speed.py
	$(BIN)/python bench/cluster.py
	$(BIN)/python bench/ansible_playbook.py
	$(BIN)/python bench/cache.py
	$(BIN)/python bench/ansible_compat.py --corpus $(ANSIBLE_CORPUS)
	$(BIN)/recipe run bench/corpus_roles.yml --roles-path $(ANSIBLE_CORPUS)/roles --output-dir $$(mktemp -d)

clean:
	rm -rf $(VENV) output .pytest_cache
