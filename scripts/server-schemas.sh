#!/usr/bin/env bash
# Checks the simulator's copy of the CodeChat server's request schemas (crates/sim/schemas/)
# against the server's source, and the table of the server's verdicts that the simulator's
# tests compare with (crates/sim/tests/fixtures/schema-verdicts.json), using the validator the
# server itself uses (the npm package jsonschema, 1.5).
#
#   scripts/server-schemas.sh SERVER [--write]
#
# SERVER is a checkout of code-chat-br/whatsapp-api (a work tree, or a bare clone, read at
# HEAD). --write rewrites the verdicts (after adding bodies to the table). Needs node and npm;
# installs jsonschema, typescript and ulid into a temporary folder. Nothing of the server's is
# kept.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
server="${1:?usage: scripts/server-schemas.sh SERVER_CHECKOUT [--write]}"
mode="${2:-}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
file=src/validate/validate.schema.ts
if [ -f "$server/$file" ]; then
  cp "$server/$file" "$work/validate.schema.ts"
else
  git -C "$server" show "HEAD:$file" > "$work/validate.schema.ts"
fi
echo "server: $(git -C "$server" rev-parse HEAD 2>/dev/null || echo "$server")"
cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund jsonschema@1.5.0 typescript@5 ulid@3 >/dev/null
# Types only: the emitted JavaScript is complete even where type checking fails.
npx tsc --module commonjs --target es2020 --skipLibCheck --noResolve validate.schema.ts >/dev/null || true
NODE_PATH="$work/node_modules" node "$repo/scripts/server-schemas.js" "$work/validate.schema.js" "$repo" "$mode"
