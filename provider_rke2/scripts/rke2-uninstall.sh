#!/bin/sh
# rke2-uninstall.sh: remove RKE2's state, configuration and binary from this node
# (what `cluster.reset` runs). Part of provider-rke2. Agent mode: RKE2 lives under
# STYLUS_ROOT, read from /etc/spectro/environment when that file exists, else
# from the environment. The provider's scripts directory is kept, so a reset can
# be run again.
set -u

if [ -r /etc/spectro/environment ]; then
	# shellcheck source=/dev/null
	. /etc/spectro/environment
fi
ROOT=${STYLUS_ROOT:-}
ROOT=${ROOT%/}
case "$ROOT" in
"" | /*) ;;
*)
	echo "rke2-uninstall: STYLUS_ROOT must be an absolute path, got '$ROOT'" >&2
	exit 2
	;;
esac
case "$ROOT" in
*/../* | */.. | */./* | */.)
	echo "rke2-uninstall: STYLUS_ROOT must be a clean path, got '$ROOT'" >&2
	exit 2
	;;
esac
DATA_DIR=${RKE2_DATA_DIR:-$ROOT/var/lib/rancher/rke2}
case "$DATA_DIR" in
/?*) ;;
*)
	echo "rke2-uninstall: refusing to remove data dir '$DATA_DIR'" >&2
	exit 2
	;;
esac

failed=0
remove() {
	for path in "$@"; do
		rm -rf -- "$path" || failed=1
	done
}

here=$(dirname -- "$0")
if [ -f "$here/rke2-killall.sh" ]; then
	sh "$here/rke2-killall.sh"
elif [ -f "$ROOT/opt/rke2/scripts/rke2-killall.sh" ]; then
	sh "$ROOT/opt/rke2/scripts/rke2-killall.sh"
else
	echo "rke2-uninstall: rke2-killall.sh not found; RKE2 may still be running" >&2
	failed=1
fi

for unit in rke2-server.service rke2-agent.service; do
	systemctl disable "$unit" 2>/dev/null || true
	remove "/run/systemd/system/$unit.d" "/etc/systemd/system/$unit" \
		"$ROOT/usr/local/lib/systemd/system/$unit"
	for link in /etc/systemd/system/*.wants/"$unit" /etc/systemd/system/*.requires/"$unit"; do
		[ -L "$link" ] && remove "$link"
	done
done

if command -v semodule >/dev/null 2>&1 && semodule -l 2>/dev/null | grep -q '^rke2'; then
	semodule -r rke2 || failed=1
fi

remove "$ROOT/etc/rancher/rke2" "$ROOT/etc/rancher/node" "$DATA_DIR" \
	"$ROOT/usr/local/bin/rke2" "$ROOT/var/log/rke2.log" \
	"$ROOT/etc/default/rke2-server" "$ROOT/etc/default/rke2-agent" \
	/var/lib/kubelet /var/log/pods /var/log/containers \
	/run/k3s /run/flannel /etc/cni /opt/cni/bin

systemctl daemon-reload 2>/dev/null || true
systemctl reset-failed rke2-server.service rke2-agent.service 2>/dev/null || true

if [ "$failed" -ne 0 ]; then
	echo "rke2-uninstall: some parts of RKE2 could not be removed (see above)" >&2
	exit 1
fi
echo "rke2-uninstall: RKE2 removed${ROOT:+ from $ROOT}"
