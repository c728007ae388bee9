#!/usr/bin/env bash
# Vendor xterm.js and its fit addon from the npm registry into aios/static/vendor/.
#
#   scripts/vendor-xterm.sh                  # the pinned versions
#   scripts/vendor-xterm.sh 6.0.1 0.11.1     # other versions of @xterm/xterm and @xterm/addon-fit
#
# Like scripts/vendor-htmx.sh: `npm pack` (no install, no package scripts run), each tarball
# checked against the registry's integrity, the ES modules, the style sheet and the licences
# copied, and their versions and sha256 written to the xterm block of VERSIONS.txt (the htmx
# block is left as it is). The run page's terminal serves these from /static: never from a CDN.
# After another version, check the CSP shims in aios/static/xterm-csp.js (docs/security.md).
set -euo pipefail

PINNED_XTERM="6.0.0"
PINNED_FIT="0.11.0"
XTERM_VERSION="${1:-$PINNED_XTERM}"
FIT_VERSION="${2:-$PINNED_FIT}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/aios/static/vendor"

# shellcheck source=scripts/vendor-npm.sh
source "$ROOT/scripts/vendor-npm.sh"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

XTERM_INTEGRITY="$(vendor_fetch vendor-xterm @xterm/xterm "$XTERM_VERSION" "$WORK/xterm")"
FIT_INTEGRITY="$(vendor_fetch vendor-xterm @xterm/addon-fit "$FIT_VERSION" "$WORK/fit")"

# path under $WORK -> name in aios/static/vendor, in the order VERSIONS.txt lists them
SOURCES=(
  "xterm/package/lib/xterm.mjs"
  "xterm/package/css/xterm.css"
  "xterm/package/LICENSE"
  "fit/package/lib/addon-fit.mjs"
  "fit/package/LICENSE"
)
NAMES=("xterm.mjs" "xterm.css" "xterm.LICENSE" "addon-fit.mjs" "addon-fit.LICENSE")

for src in "${SOURCES[@]}"; do
  [[ -f "$WORK/$src" ]] || { echo "vendor-xterm: ${src#*/package/} is missing from ${src%%/*}" >&2; exit 1; }
done

mkdir -p "$DEST"
for i in "${!SOURCES[@]}"; do
  install -m 0644 "$WORK/${SOURCES[$i]}" "$DEST/${NAMES[$i]}"
done

block() {
  echo "# Written by scripts/vendor-xterm.sh; do not edit by hand."
  echo "package: @xterm/xterm"
  echo "version: $XTERM_VERSION"
  echo "tarball-integrity: $XTERM_INTEGRITY"
  echo "license: MIT (xterm.LICENSE)"
  echo "package: @xterm/addon-fit"
  echo "version: $FIT_VERSION"
  echo "tarball-integrity: $FIT_INTEGRITY"
  echo "license: MIT (addon-fit.LICENSE)"
  echo "files (vendored name <- path in the package, sha256):"
  for i in "${!SOURCES[@]}"; do
    sum="$(sha256sum "$DEST/${NAMES[$i]}" | cut -d' ' -f1)"
    echo "  ${NAMES[$i]} <- ${SOURCES[$i]#*/package/} sha256:$sum"
  done
}

versions="$DEST/VERSIONS.txt"
vendor_versions "$versions" "$(block)"

echo "vendored @xterm/xterm@$XTERM_VERSION and @xterm/addon-fit@$FIT_VERSION into ${DEST#"$ROOT"/}:"
cat "$versions"
