#!/bin/bash
# Runs examples/order_bot.rs against its built-in simulator, kills it (SIGKILL) in the middle of
# a conversation, starts it again on the same state file, and finishes the order. Prints the
# conversation: what the customer wrote (sent with the simulator's control API) and what the bot
# answered (from the simulator's "sent:" log lines). Needs curl.
set -u
PIDFILE=$(mktemp)
cd "$(dirname "$0")/.."
cargo build --example order_bot >/dev/null 2>&1 || { echo "the example does not build"; exit 1; }
BIN=target/debug/examples/order_bot
DB=$(mktemp -d)/order-bot.db
export ORDER_BOT_DB=$DB RUST_LOG=info NO_COLOR=1
n=0
say() { # address, text
  n=$((n+1))
  echo "customer: $2"
  curl -s -X POST "$1/control/emit" -H 'content-type: application/json' \
    -d "{\"instance\":\"codechat\",\"event\":\"messages.upsert\",\"data\":{\"keyId\":\"T$n-$RANDOM\",\"keyRemoteJid\":\"5511988887777@s.whatsapp.net\",\"messageType\":\"conversation\",\"content\":{\"text\":\"$2\"}}}" >/dev/null
}
wait_sent() { # log, count
  for i in $(seq 1 200); do
    c=$(grep -c "sent: " "$1" 2>/dev/null || true)
    [ "$c" -ge "$2" ] && break
    sleep 0.1
  done
  grep "sent: " "$1" | tail -n +$(( $2 )) | head -1 | sed 's/.*sent: /bot:      /; s/ instance=.*//'
}
start() { # log
  $BIN > "$1" 2>&1 &
  echo $! > "$PIDFILE"
  for i in $(seq 1 200); do
    addr=$(grep -o "simulator at http://127.0.0.1:[0-9]*" "$1" | head -1 | sed 's/simulator at //')
    [ -n "$addr" ] && break
    sleep 0.1
  done
  # Wait for the socket.
  for i in $(seq 1 100); do grep -q "subscribed\|connected" "$1" && break; sleep 0.1; done
  sleep 0.5
  echo "$addr"
}
L1=$(mktemp); L2=$(mktemp)
echo "== run 1 (state file $DB)"
A=$(start $L1)
say $A "hi";        wait_sent $L1 1
say $A "pizza";     wait_sent $L1 2
echo "== kill -9 $(cat "$PIDFILE") mid-conversation"
kill -9 $(cat "$PIDFILE"); sleep 0.5
echo "== run 2, same state file"
A=$(start $L2)
say $A "large";     wait_sent $L2 1
say $A "Rua Augusta 100"; wait_sent $L2 2
kill -INT $(cat "$PIDFILE"); sleep 1
echo "== the state file"
ls -la $DB* | awk '{print $5, $9}'
