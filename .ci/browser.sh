# Sourced by .ci/run: what the console's browser test needs. Debian's chromium (playwright
# downloads nothing here), a CJK font so screenshots show the Chinese pages, and the npm
# package playwright-core pinned by tests/console/package-lock.json. Quiet when present.
need=""
[ -x /usr/bin/chromium ] || need="$need chromium"
fc-list 2>/dev/null | grep -qiE "wqy|noto sans cjk" || need="$need fonts-wqy-microhei"
if [ -n "$need" ]; then
    echo "installing$need (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null
fi
if [ ! -d tests/console/node_modules/playwright-core ]; then
    npm ci --prefix tests/console --no-audit --no-fund --silent
fi
