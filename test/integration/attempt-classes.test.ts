// The error classes of deliveries stats read the texts the sender really writes: each failure is produced here against a real server on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createTransport, type Transport } from '../../src/delivery/transport.js';
import { classifyAttempt } from '../../src/monitoring/delivery-stats.js';
import { postOnce } from '../../src/webhooks/post.js';
import { closedPortUrl, startGarbageServer, startReceiver, type Receiver } from '../helpers/receiver.js';

let receiver: Receiver;
let garbage: { url: string; close(): Promise<void> };
let transport: Transport;

beforeAll(async () => {
  receiver = await startReceiver((request) => {
    if (request.url.endsWith('/drop')) return 'drop';
    if (request.url.endsWith('/malformed')) return 'malformed';
    if (request.url.endsWith('/hang')) return 'hang';
    if (request.url.endsWith('/429')) return 429;
    if (request.url.endsWith('/302')) return { status: 302, headers: { location: '/elsewhere' } };
    return 503;
  });
  garbage = await startGarbageServer();
  transport = createTransport();
});

afterAll(async () => {
  await transport.close();
  await receiver.close();
  await garbage.close();
});

describe('each failure the sender meets, as it stores it, falls in its class', () => {
  test.each([
    ['a refused connection', async () => closedPortUrl(), 'connection_refused'],
    ['TLS spoken to a plain HTTP server', async () => receiver.url.replace('http:', 'https:'), 'tls'],
    ['a dropped connection', async () => `${receiver.url}/drop`, 'connection_closed'],
    ['a broken status line', async () => `${receiver.url}/malformed`, 'protocol'],
    ['a server that speaks no HTTP', async () => garbage.url, 'protocol'],
    ['a receiver that never answers', async () => `${receiver.url}/hang`, 'timeout'],
    ['a host name that does not resolve', async () => 'http://license-manager-test.invalid/hook', 'dns'],
    ['a 503', async () => receiver.url, 'http_5xx'],
    ['a 429', async () => `${receiver.url}/429`, 'http_429'],
    ['a redirect', async () => `${receiver.url}/302`, 'http_3xx'],
  ])('%s', async (_, url, expected) => {
    const outcome = await postOnce(await url(), '{}', { 'Content-Type': 'application/json' }, { timeoutMs: 1500, fetch: transport.fetch });
    expect({ class: classifyAttempt({ statusCode: outcome.statusCode, error: outcome.transportError }), error: outcome.transportError }).toEqual({
      class: expected,
      error: outcome.statusCode === null ? expect.any(String) : null,
    });
  });
});
