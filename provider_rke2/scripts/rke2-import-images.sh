#!/bin/sh
# rke2-import-images.sh [SOURCE]: copy container image archives (*.tar, *.tar.gz,
# *.tar.zst) found below SOURCE into RKE2's airgap image directory, which RKE2
# imports at start. SOURCE defaults to $STYLUS_ROOT/opt/content/images. Part of
# provider-rke2; STYLUS_ROOT-aware like the other scripts. An archive is copied
# only when it differs from the one in place, through a name RKE2 ignores.
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
	echo "rke2-import-images: STYLUS_ROOT must be an absolute path, got '$ROOT'" >&2
	exit 2
	;;
esac
DATA_DIR=${RKE2_DATA_DIR:-$ROOT/var/lib/rancher/rke2}
SOURCE=${1:-$ROOT/opt/content/images}
TARGET=$DATA_DIR/agent/images

if [ ! -d "$SOURCE" ]; then
	echo "rke2-import-images: no image directory at $SOURCE; nothing to import"
	exit 0
fi
mkdir -p -- "$TARGET" || exit 1
find "$SOURCE" -type f \( -name '*.tar' -o -name '*.tar.gz' -o -name '*.tar.zst' \) -exec sh -c '
	dst=$1
	shift
	for f; do
		t="$dst/${f##*/}"
		cmp -s "$f" "$t" || { cp "$f" "$t.part" && mv -f "$t.part" "$t"; } || exit 1
	done' sh "$TARGET" {} +
