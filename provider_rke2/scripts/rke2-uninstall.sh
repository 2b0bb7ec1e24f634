#!/bin/sh
# rke2-uninstall.sh: remove RKE2 from this node (what `cluster.reset` runs): stop it
# with rke2-killall.sh, then remove what RKE2 and the provider created, as listed by
# the provider (docs/reset.md: "What a reset removes"). Part of provider-rke2; its paths come
# from rke2-prelude.sh. The scripts directory is kept, so a reset can be run again.
set -u
# shellcheck source-path=SCRIPTDIR source=rke2-prelude.sh
. "$(dirname -- "$0")/rke2-prelude.sh"

failed=0

# Something still mounted below a path is never removed: rm would go through the mount
# into whatever it shows (a pod's hostPath volume is the host's own files).
mounted_below() {
	P=$1 awk 'BEGIN { p = ENVIRON["P"] } index($2, p "/") == 1 { found = 1 } END { exit !found }' \
		/proc/self/mounts
}

# A path that is itself a mount point (on an installed Kairos node /var/lib/kubelet,
# /etc/cni and /var/lib/cni are bind mounts from the persistent partition) cannot go:
# what it holds does, the mount point stays.
mount_point() {
	P=$1 awk 'BEGIN { p = ENVIRON["P"] } $2 == p { found = 1 } END { exit !found }' /proc/self/mounts
}

remove() {
	for path in "$@"; do
		[ -e "$path" ] || [ -L "$path" ] || continue
		if mounted_below "$path"; then
			echo "rke2-uninstall: kept $path: something is still mounted there" >&2
			failed=1
		elif [ -d "$path" ] && [ ! -L "$path" ] && mount_point "$path"; then
			find "$path" -mindepth 1 -maxdepth 1 -exec rm -rf -- {} + || failed=1
		else
			rm -rf -- "$path" || failed=1
		fi
	done
}

if ! sh "$here/rke2-killall.sh"; then
	echo "rke2-uninstall: rke2-killall.sh did not finish cleanly; removing what can be removed" >&2
	failed=1
fi

for unit in $RKE2_UNITS; do
	systemctl disable "$unit" 2>/dev/null || true
done

if command -v semodule >/dev/null 2>&1 && semodule -l 2>/dev/null | grep -q '^rke2'; then
	semodule -r rke2 || failed=1
fi

# Paths made only of the root and fixed names, and host names with shell patterns:
# split and expanded on purpose.
# shellcheck disable=SC2086
remove ${RKE2_REMOVE:-} ${RKE2_REMOVE_HOST:-}

# A data dir or kubelet dir of the user's choosing may share its parent, or even hold
# other files: only what RKE2 and the kubelet create inside goes (`bin` only as the
# link RKE2 makes), then the directory itself when that left it empty.
removed_inside() {
	dir=$1
	shift
	if [ -z "$dir" ] || [ ! -d "$dir" ]; then return 0; fi
	for entry in "$@"; do
		remove "$dir/$entry"
	done
	[ -d "$dir" ] || return 0
	rmdir -- "$dir" 2>/dev/null || mount_point "$dir" ||
		echo "rke2-uninstall: kept $dir: it holds files RKE2 did not create"
}
if [ -L "$RKE2_DATA_DIR/bin" ]; then
	remove "$RKE2_DATA_DIR/bin"
fi
removed_inside "$RKE2_DATA_DIR" agent data server
removed_inside "${RKE2_KUBELET_DIR:-}" pods plugins plugins_registry pod-resources device-plugins checkpoints \
	cpu_manager_state memory_manager_state
# shellcheck disable=SC2086
for dir in ${RKE2_REMOVE_IF_EMPTY:-}; do
	rmdir -- "$dir" 2>/dev/null || true
done

systemctl daemon-reload 2>/dev/null || true
# shellcheck disable=SC2086
systemctl reset-failed $RKE2_UNITS 2>/dev/null || true

if [ "$failed" -ne 0 ]; then
	echo "rke2-uninstall: some parts of RKE2 could not be removed (see above)" >&2
	exit 1
fi
echo "rke2-uninstall: RKE2 removed${RKE2_ROOT:+ from $RKE2_ROOT}"
