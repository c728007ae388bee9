# shellcheck shell=bash
# What scripts/vendor-htmx.sh and scripts/vendor-xterm.sh share: sourced, not run.
#
#   vendor_fetch TOOL PACKAGE VERSION DIR   unpack PACKAGE@VERSION in DIR/package, print its integrity
#   vendor_versions FILE BLOCK              put BLOCK into VERSIONS.txt, keeping the other blocks
#
# `npm pack` only (no install, no package scripts run), and the tarball checked against the
# registry's sha512 integrity a second time, so a corrupted npm cache cannot slip through.

for tool in npm tar sha256sum python3; do
  command -v "$tool" >/dev/null || { echo "vendor: $tool is required" >&2; exit 1; }
done

vendor_fetch() {
  local me="$1" package="$2" version="$3" dir="$4" integrity actual tarball
  integrity="$(npm view --silent "$package@$version" dist.integrity)" || {
    echo "$me: npm view $package@$version failed (no such version, or no registry)" >&2
    return 1
  }
  [[ "$integrity" == sha512-* ]] || {
    echo "$me: no sha512 integrity for $package@$version (got: '$integrity')" >&2
    return 1
  }
  mkdir -p "$dir"
  tarball="$dir/$(cd "$dir" && npm pack --silent "$package@$version" | tail -n1)"
  [[ -f "$tarball" ]] || { echo "$me: npm pack did not produce $tarball" >&2; return 1; }
  actual="$(python3 -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' "$tarball")"
  [[ "$actual" == "$integrity" ]] || {
    echo "$me: $package tarball integrity mismatch: registry $integrity, got $actual" >&2
    return 1
  }
  tar -xzf "$tarball" -C "$dir"
  [[ "$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$dir/package/package.json" | head -n1)" == "$version" ]] || {
    echo "$me: package.json in the tarball is not $package $version" >&2
    return 1
  }
  echo "$integrity"
}

vendor_versions() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/vendor-versions.py" "$1" "$2"
}
