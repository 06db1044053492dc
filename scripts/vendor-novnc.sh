#!/usr/bin/env bash
# Development-time only: vendors noVNC (an ES-module VNC client, MPL-2.0) from the npm
# registry into the console's static files, so users need no front-end tooling.
# Usage: bash scripts/vendor-novnc.sh [VERSION]   (needs npm; the result is committed)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${1:-1.7.0}
DEST=src/viridian/console/static/vendor/novnc
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@novnc/novnc@$VERSION" >/dev/null && tar xzf novnc-novnc-*.tgz)
rm -rf "$DEST"
mkdir -p "$DEST/docs"
cp -r "$work/package/core" "$work/package/vendor" "$DEST/"
cp "$work/package/LICENSE.txt" "$work/package/AUTHORS" "$work/package/package.json" "$DEST/"
cp "$work/package/docs/"LICENSE* "$DEST/docs/"
find "$DEST/vendor" -name '*.md' -delete
echo "vendored @novnc/novnc $VERSION into $DEST"
