#!/bin/sh
# tests/isolated.sh COMMAND...: run COMMAND (the test suite) where the machine's own
# provider state is out of sight: each of these that exists is covered by an empty tmpfs in
# a private mount namespace, so that a key, an event log, a STYLUS_ROOT or an output file
# this machine holds (a real node's, another run's) can neither change a result nor be
# touched. Where nothing is there to hide, COMMAND runs as it is.
set -eu
hide=
for path in /etc/spectro /var/lib/provider-rke2 /var/log/provider-rke2 /persistent /usr/local/cloud-config; do
	if [ -d "$path" ]; then hide="$hide $path"; fi
done
if [ -z "$hide" ]; then
	exec "$@"
fi
echo "tests/isolated.sh: hiding this machine's$hide from the tests" >&2
# shellcheck disable=SC2016 # expanded by the inner shell
exec unshare --mount --propagation private sh -c '
	for path in $0; do mount -t tmpfs -o mode=0755 tmpfs "$path"; done
	exec "$@"' "$hide" "$@"
