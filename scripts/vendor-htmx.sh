#!/usr/bin/env bash
# Vendor htmx and its SSE extension from the npm registry into aios/static/vendor/.
#
#   scripts/vendor-htmx.sh            # the pinned version
#   scripts/vendor-htmx.sh 4.0.2      # another version (then review docs/htmx-notes.md)
#
# Uses `npm pack` (no install, no package scripts run; scripts/vendor-npm.sh), checks the tarball
# against the registry's integrity, copies dist/htmx.min.js, dist/ext/hx-sse.js and LICENSE, and
# writes the htmx block of VERSIONS.txt with the sha256 of each file. The dashboard serves these
# from /static: never from a CDN.
set -euo pipefail

PINNED_VERSION="4.0.1"
PACKAGE="htmx.org"
VERSION="${1:-$PINNED_VERSION}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/aios/static/vendor"

# shellcheck source=scripts/vendor-npm.sh
source "$ROOT/scripts/vendor-npm.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

integrity="$(vendor_fetch vendor-htmx "$PACKAGE" "$VERSION" "$WORK")"
PKG="$WORK/package"

# name in the package -> name in aios/static/vendor
declare -A FILES=(
  ["dist/htmx.min.js"]="htmx.min.js"
  ["dist/ext/hx-sse.js"]="hx-sse.js"
  ["LICENSE"]="htmx.LICENSE"
)
ORDER=("dist/htmx.min.js" "dist/ext/hx-sse.js" "LICENSE")

for src in "${ORDER[@]}"; do
  [[ -f "$PKG/$src" ]] || { echo "vendor-htmx: $src is missing from $PACKAGE@$VERSION" >&2; exit 1; }
done

mkdir -p "$DEST"
for src in "${ORDER[@]}"; do
  install -m 0644 "$PKG/$src" "$DEST/${FILES[$src]}"
done

block() {
  echo "# Written by scripts/vendor-htmx.sh; do not edit by hand."
  echo "package: $PACKAGE"
  echo "version: $VERSION"
  echo "tarball-integrity: $integrity"
  echo "license: BSD-0-Clause (htmx.LICENSE)"
  echo "files (vendored name <- path in the package, sha256):"
  for src in "${ORDER[@]}"; do
    name="${FILES[$src]}"
    sum="$(sha256sum "$DEST/$name" | cut -d' ' -f1)"
    echo "  $name <- $src sha256:$sum"
  done
}
vendor_versions "$DEST/VERSIONS.txt" "$(block)"

echo "vendored $PACKAGE@$VERSION into ${DEST#"$ROOT"/}:"
cat "$DEST/VERSIONS.txt"
