#!/usr/bin/env bash
# The browser tests drive Debian's chromium (Playwright cannot download its own browser here).
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
$sudo apt-get update -q && $sudo apt-get install -y -q chromium
