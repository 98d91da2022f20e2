#!/usr/bin/env bash
# Checks deploy/eventsock-bot.service with systemd-analyze verify, its ExecStart pointed at a
# binary that exists here (the unit's own path is where an operator installs the bot).
# Prints what systemd says; exits non-zero on any complaint about the unit.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "verify-unit: systemd-analyze is not installed; the unit was not checked" >&2
  exit 0
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
bin=$(command -v true)
sed "s#^ExecStart=/usr/local/bin/echo_bot#ExecStart=${bin}#" deploy/eventsock-bot.service > "$dir/eventsock-bot.service"
out=$(systemd-analyze verify --man=no "$dir/eventsock-bot.service" 2>&1 || true)
# Lines about the host's own units (it may not run systemd) are not this unit's.
mine=$(printf '%s\n' "$out" | grep -F "eventsock-bot.service" || true)
if [ -n "$mine" ]; then
  printf '%s\n' "$mine" >&2
  exit 1
fi
echo "verify-unit: deploy/eventsock-bot.service passes systemd-analyze verify"
