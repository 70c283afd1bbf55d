import { createHmac } from 'node:crypto';

/** X-Webhook-Signature: lowercase hex HMAC-SHA256 of the exact body bytes, no `sha256=` prefix (reference, "Request Headers"). */
export function signBody(body: string | Buffer, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('hex');
}
