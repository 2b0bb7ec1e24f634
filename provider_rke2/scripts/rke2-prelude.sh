# shellcheck shell=sh
# rke2-prelude.sh: sourced by provider-rke2's node scripts. The provider decides every
# path (its paths module, with the data dir this node really uses) and hands them over
# in the environment; an operator running a script by hand gets them from
# rke2-paths.env beside the scripts, which every boot rewrites. Nothing here guesses.
here=$(dirname -- "$0")
if [ -z "${RKE2_DATA_DIR:-}" ] && [ -r "$here/rke2-paths.env" ]; then
	# shellcheck source=/dev/null
	. "$here/rke2-paths.env"
fi
name=${0##*/}
name=${name%.sh}
if [ -z "${RKE2_DATA_DIR:-}" ]; then
	echo "$name: no paths: run it through agent-provider-rke2 (cluster.reset), or first write them with" >&2
	echo "  agent-provider-rke2 paths --env > $here/rke2-paths.env" >&2
	exit 2
fi
for value in "${RKE2_ROOT:-/}" "$RKE2_DATA_DIR" "${RKE2_KUBELET_DIR:-/x}"; do
	case "$value" in
	/*) ;;
	*)
		echo "$name: expected absolute paths, got '$value'" >&2
		exit 2
		;;
	esac
done
for value in "$RKE2_DATA_DIR" "${RKE2_KUBELET_DIR:-/x}"; do
	case "$value" in
	/ | //*)
		echo "$name: refusing to act on '$value'" >&2
		exit 2
		;;
	esac
done
RKE2_UNITS=${RKE2_UNITS:-rke2-server.service rke2-agent.service}
