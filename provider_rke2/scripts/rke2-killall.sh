#!/bin/sh
# rke2-killall.sh: stop RKE2 and everything it started on this node (units,
# container processes, mounts, network namespaces, interfaces, firewall rules),
# keeping its files. Part of provider-rke2; its paths come from rke2-prelude.sh.
set -u
# shellcheck source-path=SCRIPTDIR source=rke2-prelude.sh
. "$(dirname -- "$0")/rke2-prelude.sh"

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

# Containerd shims started from this node's data dir, matched as a literal prefix
# (a data dir may hold characters a pattern would read as operators).
shims() {
	ps -e -o pid= -o args= | awk '
		BEGIN { prefix = ENVIRON["RKE2_DATA_DIR"] "/data/" }
		{ pid = $1; sub(/^[ \t]*[0-9]+[ \t]+/, "") }
		index($0, prefix) == 1 && $1 ~ /\/bin\/containerd-shim[^\/]*$/ { print pid }'
}

# What RKE2 and its CNIs put in a firewall dump, by their own chain names (KUBE-,
# CNI-, cali-, CILIUM_, FLANNEL) and rule comments (cali:, cilium, flanneld,
# NodeLocal DNS Cache); every other line is kept as it was, whatever it mentions.
without_rke2_rules() {
	awk '
		function ours(chain) { return chain ~ /^(KUBE-|CNI-|cali-|CILIUM_|OLD_CILIUM_|FLANNEL)/ }
		function our_comment(text) {
			sub(/^"/, "", text)
			return text ~ /^(cali:|cilium|flanneld |NodeLocal DNS Cache|nodelocaldns)/
		}
		/^:/ && ours(substr($1, 2)) { next }
		/^-A / {
			if (ours($2)) next
			for (i = 3; i < NF; i++) if (($i == "-j" || $i == "-g") && ours($(i + 1))) next
			if (match($0, /--comment ("[^"]*"|[^ ]+)/) && our_comment(substr($0, RSTART + 10, RLENGTH - 10))) next
		}
		{ print }'
}

for unit in $RKE2_UNITS; do
	systemctl stop "$unit" 2>/dev/null || true
done

# Containers outlive the units (KillMode=process): end every shim RKE2 started,
# with its whole process tree.
# shellcheck disable=SC2046
signal_tree $(shims)

# Deepest mounts first, so that no unmount is refused for a busy child.
awk '{ print $2 }' /proc/self/mounts | sort -r | while IFS= read -r mnt; do
	case "$mnt" in
	/run/k3s | /run/k3s/* | "$RKE2_DATA_DIR" | "$RKE2_DATA_DIR"/* | /run/netns/cni-* | \
		"${RKE2_KUBELET_DIR:-/nonexistent}"/pods/* | "${RKE2_KUBELET_DIR:-/nonexistent}"/plugins/*)
		umount "$mnt" || umount -l "$mnt" || echo "rke2-killall: cannot unmount $mnt" >&2
		;;
	esac
done

ip netns list 2>/dev/null | awk '/^cni-/ { print $1 }' | while IFS= read -r ns; do
	ip netns delete "$ns"
done
ip -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | while IFS= read -r link; do
	case "$link" in
	cni0 | flannel.* | flannel-v6.* | flannel-wg | flannel-wg-v6 | vxlan.calico | vxlan-v6.calico | cali* | \
		cilium_* | kube-ipvs0 | nodelocaldns)
		ip link delete "$link"
		;;
	esac
done

status=0
for tables in iptables ip6tables; do
	command -v "$tables-save" >/dev/null 2>&1 || continue
	rules=$("$tables-save") || { status=1; continue; }
	printf '%s\n' "$rules" | without_rke2_rules | "$tables-restore" || {
		echo "rke2-killall: $tables-restore refused the cleaned rules; the firewall is unchanged" >&2
		status=1
	}
done
exit "$status"
