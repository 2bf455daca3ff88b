#!/usr/bin/env bash
# The browser tests' tools (tests/e2e/portal_browser.rs runs tests/browser/journeys.mjs):
# Debian's chromium and chromium-driver, when /usr/bin/chromium is missing; Node.js and
# npm, when missing; a CJK font, when none is installed (the pages are Chinese by default,
# and the screenshots would show empty boxes); then the npm packages pinned in
# tests/browser/package-lock.json (playwright-core, axe-core), installed with `npm ci`.
# Nothing third-party is committed: the packages come from the npm registry here.
set -euo pipefail
cd "$(dirname "$0")/../.."

packages=()
if [ ! -x /usr/bin/chromium ]; then
    packages+=(chromium chromium-driver)
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
fi
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
    packages+=(fonts-noto-cjk)
fi
if [ "${#packages[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "installing ${packages[*]}"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq "${packages[@]}"
fi

npm ci --prefix tests/browser --no-audit --no-fund
