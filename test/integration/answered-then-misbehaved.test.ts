// A receiver that answers and then misbehaves, on a raw TCP server on 127.0.0.1: the status line decides the attempt.
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { classifyAttempt } from '../../src/monitoring/delivery-stats.js';
import { RESPONSE_BODY_MS } from '../../src/webhooks/post.js';
import { expiredLicenses, project } from '../helpers/workspace.js';

const NOW = '2025-01-15T08:00:00Z';
const TIMEOUT_MS = 3000;

/** How the raw server answers a request to /<mode>; each request it reads is counted per mode. */
const MODES: Record<string, (socket: net.Socket) => void> = {
  // 2xx, then the connection closes with most of the announced body missing.
  'closed-mid-body': (socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n{"ok":tr');
    setTimeout(() => socket.destroy(), 20);
  },
  // 2xx, then a chunked body that never ends, a byte every 10 ms.
  'endless-body': (socket) => {
    socket.write('HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n');
    const timer = setInterval(() => socket.write('1\r\nx\r\n'), 10);
    socket.on('close', () => clearInterval(timer));
  },
  // 2xx, then 200 MB as fast as the client takes it.
  'huge-body': (socket) => {
    socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${200 * 1024 * 1024}\r\n\r\n`);
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const pump = () => {
      while (!socket.destroyed && socket.write(chunk));
    };
    socket.on('drain', pump);
    pump();
  },
  // 2xx, then part of the body and silence past the attempt's timeout.
  'stalled-body': (socket) => {
    socket.write('HTTP/1.1 201 Created\r\nContent-Length: 1000\r\n\r\npartial');
  },
  'status-999': (socket) => socket.end('HTTP/1.1 999 Whatever\r\nContent-Length: 2\r\n\r\nok'),
  'status-600': (socket) => socket.end('HTTP/1.1 600 Whatever\r\nContent-Length: 2\r\n\r\nok'),
  'status-099': (socket) => socket.end('HTTP/1.1 099 Whatever\r\nContent-Length: 2\r\n\r\nok'),
  'status-1000': (socket) => socket.end('HTTP/1.1 1000 Whatever\r\nContent-Length: 2\r\n\r\nok'),
};

const requests = new Map<string, number>();
const sockets = new Set<net.Socket>();
let server: net.Server;
let base: string;

beforeAll(async () => {
  server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const end = buffered.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = buffered.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buffered.length < end + 4 + length) return;
      buffered = buffered.subarray(end + 4 + length);
      const mode = /^POST \/([\w-]+)/.exec(head)?.[1] ?? '';
      requests.set(mode, (requests.get(mode) ?? 0) + 1);
      MODES[mode]?.(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

interface Listed {
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
}

/** One event sent to /<mode> by `process-expirations`: the run's exit code, its duration and the delivery as the log has it. */
async function sendTo(mode: string) {
  const ws = await project({
    receiver: { url: `${base}/${mode}` },
    config: { webhooks: { enabled: true, timeoutMs: TIMEOUT_MS, retryDelaysMs: [10, 20, 40] } },
    licenses: expiredLicenses(1),
  });
  const started = Date.now();
  const run = await ws.cli(['process-expirations', '--now', NOW, '--json'], { timeoutMs: 60_000 });
  const ms = Date.now() - started;
  const [delivery] = JSON.parse((await ws.cli(['deliveries', 'list', '--json'])).stdout) as Listed[];
  return { run, ms, delivery: delivery! };
}

describe('a 2xx is delivered whatever the body does after it', () => {
  test.each([
    ['closes the connection mid-body', 'closed-mid-body', 200],
    ['sends a body that never ends', 'endless-body', 202],
    ['sends a 200 MB body', 'huge-body', 200],
    ['stalls in the body past the attempt timeout', 'stalled-body', 201],
  ])(
    'a receiver that answers 2xx and %s: one request, delivered, exit 0',
    async (_, mode, status) => {
      const { run, ms, delivery } = await sendTo(mode);
      expect([run.code, run.stderr]).toEqual([0, '']);
      expect(JSON.parse(run.stdout)).toMatchObject({ delivered: 1, abandoned: 0 });
      expect(delivery).toMatchObject({ status: 'delivered', attempts: 1, last_status_code: status, last_error: null });
      expect(requests.get(mode)).toBe(1);
      // The body costs at most its own short deadline, not the attempt's timeout.
      expect(ms).toBeLessThan(RESPONSE_BODY_MS + 2500);
    },
    60_000,
  );
});

describe('a status code outside 100–599 is a clear error', () => {
  test.each(['999', '600', '099', '1000'])(
    'status %s: each attempt says which status came, the delivery is abandoned after its retries (exit 3)',
    async (code) => {
      const { run, delivery } = await sendTo(`status-${code}`);
      expect(run.code).toBe(3);
      expect(delivery).toMatchObject({ status: 'abandoned', attempts: 4, last_status_code: null });
      expect(delivery.last_error).toBe(`the receiver answered with status ${code}, which is not an HTTP status (RFC 9110 §15: 100 to 599): fix the receiver`);
      expect(classifyAttempt({ statusCode: null, error: delivery.last_error })).toBe('protocol');
    },
    60_000,
  );
});
