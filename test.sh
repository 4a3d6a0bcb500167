#!/usr/bin/env bash
# Runs every Tenantry test. Installs what the tests need when it is missing, then runs
# `dotnet test` on the whole solution and ends with one line: "Tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")"

need_apt=()
command -v dotnet >/dev/null || { echo "The .NET SDK 10 is required (https://dot.net)." >&2; exit 2; }
# The PostgreSQL tests start private servers of their own (initdb into a temp dir, random port).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
# The console's browser tests drive Debian's Chromium by path (Playwright downloads nothing).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
# The gateway's shared rate-limit tests start a private redis-server (random port, no persistence).
command -v redis-server >/dev/null || need_apt+=(redis-server)
# The mail tests send to a private SMTP server of Debian's (python3 -m aiosmtpd, random port).
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || need_apt+=(python3-aiosmtpd)
# The S3 provider tests run against s3rver (an S3-compatible server from npm), kept in tests/.tools.
s3rver=tests/.tools/node_modules/.bin/s3rver
[ -x "$s3rver" ] || command -v npm >/dev/null || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "Installing what the tests need: ${need_apt[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$s3rver" ]; then
  echo "Installing what the tests need: s3rver (npm) into tests/.tools"
  npm install --silent --no-audit --no-fund --prefix tests/.tools s3rver@3.7.1 >/dev/null
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
dotnet test Tenantry.slnx -c Release 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -oE 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -oE 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
echo "Tests: $passed passed, $failed failed"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then exit 1; fi
