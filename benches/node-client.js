// The baseline of the protocol's own sample client: Node `ws` plus JSON.parse, counting events.
// Usage: node node-client.js URL COUNT   -> prints {"count":N,"elapsedUs":T} (first send to last receipt)
const WebSocket = require('ws');
const [url, n] = process.argv.slice(2);
const total = Number(n);
let count = 0;
let first = null;
const ws = new WebSocket(url, { maxPayload: 64 * 1024 * 1024 });
ws.on('message', (data) => {
  const m = JSON.parse(data);
  if (first === null) first = m.sentAtUs;
  if (++count === total) {
    const nowUs = Math.round((performance.timeOrigin + performance.now()) * 1000);
    console.log(JSON.stringify({ count, elapsedUs: nowUs - first }));
    process.exit(0);
  }
});
ws.on('error', (e) => { console.error(e.message); process.exit(1); });
