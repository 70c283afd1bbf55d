// The reference's Express handler, for license-manager: raw body, verify, dispatch by event type.
//   npm install express && WEBHOOK_SECRET=... PORT=8000 node examples/receiver-express.js
// Each handled event is printed as one JSON line.
import { createHmac, timingSafeEqual } from 'node:crypto';
import express from 'express';

const secret = process.env.WEBHOOK_SECRET;
if (!secret) {
  console.error('Set WEBHOOK_SECRET to the secret printed by "license-manager settings get webhook-secret --reveal".');
  process.exit(2);
}

const seen = new Set(); // use a table with a unique key in a real application
// Your application knows its licenses; here KNOWN_LICENSES=LIC-1,LIC-2 stands in for that lookup (unset: all known).
const known = process.env.KNOWN_LICENSES ? new Set(process.env.KNOWN_LICENSES.split(',').map((code) => code.trim())) : undefined;

const app = express();

// Capture the raw body: the signature is over these exact bytes, not over a re-serialised object.
app.use('/webhook', express.raw({ type: 'application/json' }));

app.post('/webhook', (req, res) => {
  // express.raw leaves req.body an empty object for another Content-Type: there are no bytes to verify.
  if (!Buffer.isBuffer(req.body)) return res.status(415).send('Send Content-Type: application/json');
  const signature = String(req.headers['x-webhook-signature'] ?? '');
  const expected = createHmac('sha256', secret).update(req.body).digest('hex');
  if (signature.length !== expected.length || !timingSafeEqual(Buffer.from(expected), Buffer.from(signature))) {
    return res.status(401).send('Invalid signature');
  }
  let event;
  try {
    event = JSON.parse(req.body.toString('utf8'));
  } catch {
    return res.status(415).send('The body is not JSON');
  }
  // Signed JSON is not always an event ([], null, "x", no payload): 422, never a 500 on a missing field.
  if (!isObject(event) || !isObject(event.payload)) return res.status(422).send('The body is not an event: an object with a payload object');
  const { event_type, payload } = event;
  // The same event may arrive twice (a retry after a lost answer): answer 200 again, act once.
  const id = req.headers['x-webhook-id'];
  if (id !== undefined && seen.has(id)) {
    console.log(JSON.stringify({ id, event_type, license_code: payload?.license_code, duplicate: true }));
    return res.status(200).send('OK');
  }
  // "license-manager send-test-event" marks its events: answer 2xx (the check passes) and act on nothing, even
  // for a license this application does not know (the sample LIC-ABC-123).
  if (req.headers['x-webhook-test'] === 'true') {
    console.log(JSON.stringify({ id, event_type, license_code: payload?.license_code, test: true, action: 'none' }));
    return res.status(200).send('OK (test event, not acted on)');
  }
  if (known && !known.has(payload?.license_code)) return res.status(422).send('Unknown license');
  if (id !== undefined) seen.add(id); // a sender without X-Webhook-Id (the reference) is never taken for a duplicate
  switch (event_type) {
    case 'license.expiring':
      handle(req, event_type, payload, { action: 'remind', days: payload.days_until_expiry });
      break;
    case 'license.expired':
      handle(req, event_type, payload, { action: 'deactivate', at: payload.expired_at });
      break;
    case 'license.expired_reminder': // only when after-expiry days are set: N days after the expiry date
      handle(req, event_type, payload, { action: 'win-back', at: payload.expired_at, days: payload.days_since_expiry });
      break;
    case 'license.update_support_expired':
      handle(req, event_type, payload, { action: 'offer-renewal', at: payload.updates_until });
      break;
  }
  res.status(200).send('OK');
});

function isObject(value) {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function handle(req, eventType, payload, result) {
  // Send a notification, update the CRM, ...
  console.log(JSON.stringify({ id: req.headers['x-webhook-id'], event_type: eventType, license_code: payload.license_code, ...result }));
}

const server = app.listen(Number(process.env.PORT ?? 8000), '127.0.0.1', () => {
  console.error(`listening on http://127.0.0.1:${server.address().port}/webhook`);
});
process.on('SIGTERM', () => server.close());
process.on('SIGINT', () => server.close());
