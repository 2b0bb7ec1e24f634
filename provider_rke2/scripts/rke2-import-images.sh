#!/bin/sh
# rke2-import-images.sh [SOURCE]: copy container image archives (*.tar, *.tar.gz,
# *.tar.zst) found below SOURCE into RKE2's airgap image directory, which RKE2
# imports at start. SOURCE defaults to RKE2_IMAGES_SOURCE. Links are followed (to a
# directory or an archive; find reports loops), and only regular files are copied,
# each only when it differs from the one in place, through a name RKE2 ignores.
# Part of provider-rke2; its paths come from rke2-prelude.sh.
set -u
# shellcheck source-path=SCRIPTDIR source=rke2-prelude.sh
. "$(dirname -- "$0")/rke2-prelude.sh"
SOURCE=${1:-${RKE2_IMAGES_SOURCE:-}}
TARGET=$RKE2_DATA_DIR/agent/images

if [ -z "$SOURCE" ] || [ ! -d "$SOURCE" ]; then
	echo "rke2-import-images: no image directory at '$SOURCE'; nothing to import"
	exit 0
fi
mkdir -p -- "$TARGET" || exit 1
find -L "$SOURCE" -type f \( -name '*.tar' -o -name '*.tar.gz' -o -name '*.tar.zst' \) -exec sh -c '
	dst=$1
	shift
	for f; do
		t="$dst/${f##*/}"
		cmp -s "$f" "$t" || { cp "$f" "$t.part" && mv -f "$t.part" "$t"; } || exit 1
	done' sh "$TARGET" {} +
