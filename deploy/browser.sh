#!/usr/bin/env bash
# Installs Chromium and its WebDriver (Debian's chromium and chromium-driver) for the dashboard's
# browser test, unless they are already there.  deploy/browser.sh
set -euo pipefail
die() { echo "browser.sh: $*" >&2; exit 1; }
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
command -v apt-get >/dev/null 2>&1 ||
  die "Chromium is not installed and apt-get is missing; install chromium and chromedriver and retry"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "installing Chromium needs root or sudo"
  sudo=sudo
fi
echo "installing chromium and chromium-driver (for the dashboard test)..."
$sudo apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null ||
  die "apt-get install chromium chromium-driver failed"
