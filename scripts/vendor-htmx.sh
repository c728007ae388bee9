#!/usr/bin/env bash
# Vendor htmx and its SSE extension from the npm registry into aios/static/vendor/.
#
#   scripts/vendor-htmx.sh            # the pinned version
#   scripts/vendor-htmx.sh 4.0.2      # another version (then review docs/htmx-notes.md)
#
# Uses `npm pack` (no install, no package scripts run), checks the tarball against the registry's
# integrity, copies dist/htmx.min.js, dist/ext/hx-sse.js and LICENSE, and writes the htmx block of
# VERSIONS.txt with the sha256 of each file. The dashboard serves these from /static: never from a CDN.
set -euo pipefail

PINNED_VERSION="4.0.1"
PACKAGE="htmx.org"
VERSION="${1:-$PINNED_VERSION}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/aios/static/vendor"

for tool in npm tar sha256sum python3; do
  command -v "$tool" >/dev/null || { echo "vendor-htmx: $tool is required" >&2; exit 1; }
done

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

integrity="$(npm view --silent "$PACKAGE@$VERSION" dist.integrity)" || {
  echo "vendor-htmx: npm view $PACKAGE@$VERSION failed (no such version, or no registry)" >&2
  exit 1
}
[[ "$integrity" == sha512-* ]] || {
  echo "vendor-htmx: no sha512 integrity for $PACKAGE@$VERSION (got: '$integrity')" >&2
  exit 1
}

(cd "$WORK" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
tarball="$WORK/$PACKAGE-$VERSION.tgz"
[[ -f "$tarball" ]] || { echo "vendor-htmx: npm pack did not produce $tarball" >&2; exit 1; }

# npm pack checks integrity itself; check again so a corrupted cache cannot slip through.
actual="$(python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
[[ "$actual" == "$integrity" ]] || {
  echo "vendor-htmx: tarball integrity mismatch: registry $integrity, got $actual" >&2
  exit 1
}

tar -xzf "$tarball" -C "$WORK"
PKG="$WORK/package"
[[ "$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$PKG/package.json" | head -n1)" == "$VERSION" ]] || {
  echo "vendor-htmx: package.json in the tarball is not version $VERSION" >&2
  exit 1
}

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
"$ROOT/scripts/vendor-versions.py" "$DEST/VERSIONS.txt" "$(block)"

echo "vendored $PACKAGE@$VERSION into ${DEST#"$ROOT"/}:"
cat "$DEST/VERSIONS.txt"
