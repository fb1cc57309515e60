#!/bin/sh
# /init of recipe's test installer (busybox sh, PID 1 of the installer's initrd).
#
# A tiny OS installer in the style of the Debian installer's preseeding: the boot menu gives
# `mode=install url=<answer file>` on the kernel command line, this script fetches the answer file,
# partitions and formats the disk, unpacks a root filesystem tarball fetched over HTTP, configures the
# system (user, password, sudo, ssh, GRUB for BIOS) and powers off. Every step is logged on the console
# as `installer: <step>`; a failed step logs `installer: FAILED: <step> (status N)` and powers off too,
# so a test waiting for the VM to stop reads why from the console log.

export PATH=/sbin:/bin:/usr/sbin:/usr/bin
# The host's sfdisk and mke2fs are called by their path: this busybox runs its own applet of a name
# (its mke2fs makes no ext4) before it looks at PATH.
TARGET=/target

log() { echo "installer: $*"; }

# Power off without an init system to ask: -f calls reboot(2) directly. PID 1 must never exit
# (the kernel panics and the VM hangs instead of stopping), hence the sysrq fallback and the loop.
stop() {
	sync
	if [ "$1" = reboot ]; then reboot -f; else poweroff -f; fi
	sleep 5
	echo o >/proc/sysrq-trigger
	while :; do sleep 3600; done
}

fail() {
	log "FAILED: $1 (status ${2:-1})"
	# unmount what is mounted so what was written so far reaches the disk (a test may look at it)
	umount "$TARGET/dev" "$TARGET/proc" "$TARGET/sys" "$TARGET" 2>/dev/null
	stop poweroff
}

# run <step> <command...>: log the step, run it, fail the install with its status if it fails
run() {
	step=$1
	shift
	log "$step"
	"$@" || fail "$step" $?
}

# wait_for <test args...>: devtmpfs nodes and network interfaces appear asynchronously after modprobe
wait_for() {
	tries=0
	until [ "$@" ]; do
		tries=$((tries + 1))
		[ $tries -gt 100 ] && return 1
		sleep 0.1
	done
}

mount_basics() {
	mkdir -p /proc /sys /dev /tmp "$TARGET"
	mount -t proc proc /proc &&
		mount -t sysfs sysfs /sys &&
		mount -t devtmpfs devtmpfs /dev
}

parse_cmdline() {
	mode=rescue
	url=
	for word in $(cat /proc/cmdline); do
		case $word in
		mode=*) mode=${word#mode=} ;;
		url=*) url=${word#url=} ;;
		esac
	done
}

rescue() {
	log "rescue mode: nothing is installed; boot with 'install url=http://HOST:PORT/answers.cfg' to install"
	while :; do sleep 3600; done
}

load_modules() {
	# virtio_scsi and crc32c_intel may be missing or refuse the CPU (TCG's qemu64 lacks SSE4.2): optional
	for module in virtio_pci virtio_blk virtio_net crc32c_generic ext4; do
		modprobe "$module" || return 1
	done
	modprobe virtio_scsi 2>/dev/null
	modprobe crc32c_intel 2>/dev/null
	return 0
}

network() {
	ip link set lo up
	wait_for -e /sys/class/net/eth0 || return 1
	# -n: give up (and fail the install) when no lease comes; -q: exit once configured
	udhcpc -i eth0 -s /etc/udhcpc.script -n -q -t 10 -T 2
}

fetch_answers() {
	wget -q -O /answers.cfg "$url" || return 1
	# a syntax error in a sourced file ends the shell: PID 1 would exit and the kernel panic, not power off
	sh -n /answers.cfg || { log "the answer file is not valid sh"; return 1; }
	. /answers.cfg
	INSTALL_DISK=${INSTALL_DISK:-/dev/vda}
	INSTALL_HOSTNAME=${INSTALL_HOSTNAME:-debian}
	INSTALL_ROOTFS=${INSTALL_ROOTFS:-rootfs.tar.gz}
	INSTALL_AFTER=${INSTALL_AFTER:-poweroff}
	[ -n "$INSTALL_USER" ] || { log "INSTALL_USER is not set"; return 1; }
	[ -n "$INSTALL_PASSWORD$INSTALL_PASSWORD_HASH" ] || { log "neither INSTALL_PASSWORD nor INSTALL_PASSWORD_HASH is set"; return 1; }
	# a relative INSTALL_ROOTFS is relative to the answer file's directory, as in a browser
	case $INSTALL_ROOTFS in
	*://*) rootfs_url=$INSTALL_ROOTFS ;;
	*) rootfs_url=${url%/*}/$INSTALL_ROOTFS ;;
	esac
	log "answers: disk=$INSTALL_DISK hostname=$INSTALL_HOSTNAME user=$INSTALL_USER rootfs=$rootfs_url after=$INSTALL_AFTER"
}

partition() {
	wait_for -b "$INSTALL_DISK" || return 1
	# MBR, one bootable Linux partition from 1 MiB (room for GRUB's core.img) to the end
	echo 'label: dos
start=1MiB, type=83, bootable' | /sbin/sfdisk --quiet --wipe always "$INSTALL_DISK" || return 1
	case $INSTALL_DISK in
	*[0-9]) part=${INSTALL_DISK}p1 ;;   # nvme0n1 -> nvme0n1p1
	*) part=${INSTALL_DISK}1 ;;
	esac
	wait_for -b "$part"
}

format() {
	log "root filesystem UUID $uuid"
	/sbin/mke2fs -q -F -t ext4 -L root -U "$uuid" "$part" && mount -t ext4 "$part" "$TARGET"
}

unpack() {
	# pipefail: a download cut short must fail the step, not leave a half system
	(set -o pipefail; wget -q -O - "$rootfs_url" | tar -xzf - --numeric-owner -C "$TARGET")
}

configure_files() {
	echo "UUID=$uuid / ext4 errors=remount-ro 0 1" >"$TARGET/etc/fstab" &&
		echo "$INSTALL_HOSTNAME" >"$TARGET/etc/hostname" || return 1
	if grep -q '^127\.0\.1\.1' "$TARGET/etc/hosts"; then
		sed -i "s/^127\.0\.1\.1.*/127.0.1.1 $INSTALL_HOSTNAME/" "$TARGET/etc/hosts"
	else
		echo "127.0.1.1 $INSTALL_HOSTNAME" >>"$TARGET/etc/hosts"
	fi || return 1
	# the installer configures the system, not cloud-init (which would also reset the hostname and keys)
	touch "$TARGET/etc/cloud/cloud-init.disabled" || return 1
	# eth0 by DHCP: the base image leaves it to cloud-init's fallback network config, disabled above
	if ! grep -qs 'iface eth0' "$TARGET"/etc/network/interfaces "$TARGET"/etc/network/interfaces.d/*; then
		printf 'auto eth0\niface eth0 inet dhcp\n' >"$TARGET/etc/network/interfaces.d/eth0" || return 1
	fi
	mkdir -p "$TARGET/etc/ssh/sshd_config.d" &&
		echo "PasswordAuthentication yes" >"$TARGET/etc/ssh/sshd_config.d/installer.conf"
}

bind_mounts() {
	for fs in dev proc sys; do
		mount --bind "/$fs" "$TARGET/$fs" || return 1
	done
}

create_user() {
	if ! chroot "$TARGET" id "$INSTALL_USER" >/dev/null 2>&1; then
		chroot "$TARGET" useradd -m -s /bin/bash -G sudo "$INSTALL_USER" || return 1
	fi
	if [ -n "$INSTALL_PASSWORD_HASH" ]; then
		echo "$INSTALL_USER:$INSTALL_PASSWORD_HASH" | chroot "$TARGET" chpasswd -e
	else
		echo "$INSTALL_USER:$INSTALL_PASSWORD" | chroot "$TARGET" chpasswd
	fi || return 1
	echo "$INSTALL_USER ALL=(ALL) NOPASSWD:ALL" >"$TARGET/etc/sudoers.d/installer" &&
		chmod 0440 "$TARGET/etc/sudoers.d/installer"
}

install_grub() {
	# update-grub writes root=UUID= only when /dev/disk/by-uuid/<uuid> exists (else root=/dev/vda1): the
	# link udev would make
	mkdir -p /dev/disk/by-uuid && ln -sf "$part" "/dev/disk/by-uuid/$uuid" || return 1
	chroot "$TARGET" grub-install --target=i386-pc "$INSTALL_DISK" || return 1
	# update-grub writes `root=UUID=<uuid> ro` plus GRUB_CMDLINE_LINUX (console=ttyS0,115200 net.ifnames=0)
	chroot "$TARGET" update-grub || return 1
	grep -q "root=UUID=$uuid" "$TARGET/boot/grub/grub.cfg" || { log "grub.cfg does not boot UUID=$uuid"; return 1; }
}

finish_disk() {
	sync
	umount "$TARGET/dev" "$TARGET/proc" "$TARGET/sys" && umount "$TARGET"
}

mount_basics || { echo "installer: FAILED: mounting /proc, /sys, /dev"; stop poweroff; }
parse_cmdline
log "mode=$mode url=$url"
[ "$mode" = install ] || rescue
[ -n "$url" ] || fail "no url= on the kernel command line"

run "loading modules" load_modules
run "configuring eth0 by DHCP" network
run "fetching the answer file $url" fetch_answers
run "partitioning $INSTALL_DISK" partition
# the root's UUID is chosen here rather than read back after mke2fs: busybox has no blkid
uuid=$(cat /proc/sys/kernel/random/uuid)
run "formatting $part as ext4" format
run "unpacking $rootfs_url" unpack
run "writing fstab, hostname, network, sshd configuration" configure_files
run "mounting /dev, /proc, /sys in $TARGET" bind_mounts
run "creating user $INSTALL_USER" create_user
run "generating ssh host keys" chroot "$TARGET" ssh-keygen -A
run "installing GRUB for BIOS on $INSTALL_DISK" install_grub
run "unmounting $TARGET" finish_disk
log "done"
stop "$INSTALL_AFTER"
