#!/bin/sh
# rke2-import-images.sh [SOURCE]: copy what RKE2 imports from its airgap image directory
# (image archives *.tar, *.tar.lz4, *.tar.bz2, *.tbz, *.tar.gz, *.tgz, *.tar.zst, *.tzst,
# and *.txt lists of images to pull) found below SOURCE into it. SOURCE defaults to
# RKE2_IMAGES_SOURCE. Links are followed (to a directory or an archive; find reports
# loops), and only regular files are copied, each only when its size or modification time
# differs from the copy in place, keeping its time (RKE2's conditional import,
# agent/images/.cache.json, then leaves an unchanged archive alone), through a name RKE2
# ignores.
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
find -L "$SOURCE" -type f \( -name '*.tar' -o -name '*.tar.lz4' -o -name '*.tar.bz2' -o -name '*.tbz' \
	-o -name '*.tar.gz' -o -name '*.tgz' -o -name '*.tar.zst' -o -name '*.tzst' -o -name '*.txt' \) -exec sh -c '
	dst=$1
	shift
	for f; do
		t="$dst/${f##*/}"
		[ -f "$t" ] && [ ! -L "$t" ] && [ "$(stat -L -c %s:%Y -- "$f")" = "$(stat -c %s:%Y -- "$t")" ] && continue
		rm -f -- "$t.part"
		{ cp -p -- "$f" "$t.part" && mv -f -- "$t.part" "$t"; } || exit 1
	done' sh "$TARGET" {} +
