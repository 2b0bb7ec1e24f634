#!/bin/sh
# rke2-killall.sh: stop RKE2 and everything it started on this node (units,
# container processes, mounts, interfaces, firewall rules), keeping its files.
# Part of provider-rke2. Agent mode: RKE2 lives under STYLUS_ROOT, read from
# /etc/spectro/environment when that file exists, else from the environment.
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
	echo "rke2-killall: STYLUS_ROOT must be an absolute path, got '$ROOT'" >&2
	exit 2
	;;
esac
DATA_DIR=${RKE2_DATA_DIR:-$ROOT/var/lib/rancher/rke2}

# Kills each given process with its whole tree, deepest first. Iterative: POSIX sh
# has no `local`, so a recursive version would clobber its own loop variable.
# kill(1) from PATH rather than the shell builtin, so what is killed can be
# audited (and recorded by a stub in tests).
signal_tree() {
	tree=$*
	frontier=$*
	depth=0
	while [ -n "$frontier" ] && [ "$depth" -lt 64 ]; do
		frontier=$(ps -e -o pid= -o ppid= | awk -v parents=" $frontier " \
			'index(parents, " " $2 " ") { printf "%s ", $1 }')
		tree="$tree $frontier"
		depth=$((depth + 1))
	done
	for pid in $(echo "$tree" | awk '{ for (i = NF; i > 0; i--) print $i }'); do
		env kill -s KILL "$pid" 2>/dev/null || true
	done
}

for unit in rke2-server.service rke2-agent.service; do
	systemctl stop "$unit" 2>/dev/null || true
done

# Containers outlive the units (KillMode=process): end every shim RKE2 started,
# with its whole process tree.
# shellcheck disable=SC2046
signal_tree $(pgrep -f "$DATA_DIR/data/[^/]*/bin/containerd-shim" || true)

# Deepest mounts first, so that no unmount is refused for a busy child.
awk '{ print $2 }' /proc/self/mounts | sort -r | while IFS= read -r mnt; do
	case "$mnt" in
	/run/k3s | /run/k3s/* | "$DATA_DIR" | "$DATA_DIR"/* | /var/lib/kubelet/pods/* | /var/lib/kubelet/plugins/* | /run/netns/cni-*)
		umount "$mnt" || umount -l "$mnt" || echo "rke2-killall: cannot unmount $mnt" >&2
		;;
	esac
done

ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }' | while IFS= read -r ns; do
	ip netns delete "$ns"
done
ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | while IFS= read -r link; do
	case "$link" in
	cni0 | flannel.1 | flannel-v6.1 | flannel-wg | flannel-wg-v6 | vxlan.calico | vxlan-v6.calico | cali* | cilium_* | kube-ipvs0 | nodelocaldns)
		ip link delete "$link"
		;;
	esac
done
rm -rf /var/lib/cni

for tables in iptables ip6tables; do
	command -v "$tables-save" >/dev/null 2>&1 || continue
	"$tables-save" | grep -v -e KUBE- -e CNI- | grep -iv -e cali -e flannel | "$tables-restore"
done
exit 0
