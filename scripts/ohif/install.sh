#!/usr/bin/env bash
# Installs the OHIF Viewer's built app (npm package @ohif/app, pinned) outside the repository, for
# tests/e2e/ohif_test.ts: the package's dist/ folder is unpacked into OHIF_DIR. Only the npm
# registry is needed (npm pack; npm checks the tarball against the registry's integrity, and so
# does this script, against the sha512 pinned here). Idempotent: does nothing when OHIF_DIR
# already holds the app. Prints the folder.
#
#   OHIF_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/imaging-ai/ohif-3.13.2)
set -euo pipefail
VERSION=3.13.2
INTEGRITY="sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
DIR="${OHIF_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/imaging-ai/ohif-${VERSION}}"

if [ -f "$DIR/index.html" ] && [ -f "$DIR/app-config.js" ] && [ -f "$DIR/.version" ] &&
  [ "$(cat "$DIR/.version")" = "$VERSION" ]; then
  echo "$DIR"
  exit 0
fi
command -v npm >/dev/null || { echo "npm is missing: cannot install @ohif/app@${VERSION}" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent --no-audit --no-fund "@ohif/app@${VERSION}" >/dev/null)
tgz="$work/ohif-app-${VERSION}.tgz"
[ -f "$tgz" ] || { echo "npm pack did not produce $tgz" >&2; exit 1; }
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
[ "$got" = "$INTEGRITY" ] || { echo "@ohif/app@${VERSION}: integrity $got, expected $INTEGRITY" >&2; exit 1; }
tar -xzf "$tgz" -C "$work" package/dist
[ -f "$work/package/dist/index.html" ] || { echo "@ohif/app@${VERSION} has no dist/index.html" >&2; exit 1; }
echo "$VERSION" >"$work/package/dist/.version"

# Replace atomically, so a half-unpacked folder is never taken for an installed one.
mkdir -p "$(dirname "$DIR")"
rm -rf "$DIR.tmp" && mv "$work/package/dist" "$DIR.tmp"
rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"
echo "$DIR"
