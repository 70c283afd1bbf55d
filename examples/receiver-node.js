// A webhook receiver in plain Node.js (no dependencies), written against license-manager's webhooks.
//   WEBHOOK_SECRET=... PORT=8000 node examples/receiver-node.js
// It verifies X-Webhook-Signature over the raw bytes, drops duplicates by X-Webhook-Id, dispatches by
// event type, and answers 200 quickly. Each handled event is printed as one JSON line.
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error('Set WEBHOOK_SECRET to the secret printed by "license-manager settings get webhook-secret --reveal".');
  process.exit(2);
}
const seen = new Set(); // use a table with a unique key in a real application
// Your application knows its licenses; here KNOWN_LICENSES=LIC-1,LIC-2 stands in for that lookup (unset: all known).
const known = process.env.KNOWN_LICENSES ? new Set(process.env.KNOWN_LICENSES.split(',').map((code) => code.trim())) : undefined;

function verify(rawBody, signature) {
  const expected = Buffer.from(createHmac('sha256', secret).update(rawBody).digest('hex'));
  const given = Buffer.from(String(signature ?? ''));
  return given.length === expected.length && timingSafeEqual(given, expected);
}

const isObject = (value) => typeof value === 'object' && value !== null && !Array.isArray(value);

const handlers = {
  'license.expiring': (payload) => ({ action: 'remind', days: payload.days_until_expiry }),
  'license.expired': (payload) => ({ action: 'deactivate', at: payload.expired_at }),
  // Sent only when after-expiry days are set: N days after the expiry date, a win-back reminder.
  'license.expired_reminder': (payload) => ({ action: 'win-back', at: payload.expired_at, days: payload.days_since_expiry }),
  'license.update_support_expired': (payload) => ({ action: 'offer-renewal', at: payload.updates_until }),
};

const server = http.createServer((req, res) => {
  // The same path as receiver-express.js and the README: point the tool at http://127.0.0.1:8000/webhook.
  if (new URL(req.url ?? '/', 'http://localhost').pathname !== '/webhook') return res.writeHead(404).end('Not found: POST to /webhook');
  if (req.method !== 'POST') return res.writeHead(405).end();
  if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) return res.writeHead(415).end('Send Content-Type: application/json');
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const rawBody = Buffer.concat(chunks); // verify these exact bytes: never re-serialise first
    if (!verify(rawBody, req.headers['x-webhook-signature'])) return res.writeHead(401).end('Invalid signature');
    const id = req.headers['x-webhook-id'];
    let event;
    try {
      event = JSON.parse(rawBody.toString('utf8'));
    } catch {
      return res.writeHead(415).end('The body is not JSON');
    }
    // Signed JSON is not always an event ([], null, "x", no payload): 422, never a crash on a missing field.
    if (!isObject(event) || !isObject(event.payload)) return res.writeHead(422).end('The body is not an event: an object with a payload object');
    const { event_type, payload } = event;
    if (id !== undefined && seen.has(id)) {
      console.log(JSON.stringify({ id, event_type, license_code: payload.license_code, duplicate: true }));
      return res.writeHead(200).end('OK');
    }
    // "license-manager send-test-event" marks its events: answer 2xx (the check passes) and act on nothing, even
    // for a license this application does not know (the sample LIC-ABC-123).
    if (req.headers['x-webhook-test'] === 'true') {
      console.log(JSON.stringify({ id, event_type, license_code: payload?.license_code, test: true, action: 'none' }));
      return res.writeHead(200).end('OK (test event, not acted on)');
    }
    if (known && !known.has(payload?.license_code)) return res.writeHead(422).end('Unknown license');
    if (id !== undefined) seen.add(id); // a sender without X-Webhook-Id (the reference) is never taken for a duplicate
    const handler = Object.hasOwn(handlers, event_type) ? handlers[event_type] : undefined; // not "__proto__" or "toString"
    const result = handler ? handler(payload) : { action: 'ignored' };
    console.log(JSON.stringify({ id, event_type, license_code: payload.license_code, ...result }));
    res.writeHead(200).end('OK');
  });
});

server.listen(Number(process.env.PORT ?? 8000), '127.0.0.1', () => {
  console.error(`listening on http://127.0.0.1:${server.address().port}/webhook`);
});
process.on('SIGTERM', () => server.close());
process.on('SIGINT', () => server.close());
