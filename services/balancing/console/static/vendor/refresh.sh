#!/usr/bin/env bash
# Refresh the vendored front-end libraries from npm (pinned), then check them against SHA256SUMS.
# CI runs only the check (tests/unit/balancing/test_console_vendor.py): no download at run time.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent uplot@1.6.32 >/dev/null && tar xzf uplot-1.6.32.tgz)
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$here/"
cp "$tmp/package/LICENSE" "$here/uPlot.LICENSE"
(cd "$here" && sha256sum --strict -c SHA256SUMS)
