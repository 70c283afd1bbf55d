import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  /** The raw bytes, exactly as they arrived. */
  body: Buffer;
  at: number;
}

/** How the receiver answers one request. */
export type Reply =
  | number
  | { status: number; body?: string; headers?: Record<string, string> }
  | { delayMs: number; status: number }
  | 'hang'
  | 'drop'
  | 'stall-body'
  | 'huge-body'
  | 'malformed';

export interface Receiver {
  url: string;
  port: number;
  requests: ReceivedRequest[];
  close(): Promise<void>;
}

/**
 * A real HTTP server on 127.0.0.1, random port. `reply` decides each answer from the request and its
 * 0-based index; the default is 200 OK.
 */
export async function startReceiver(reply: (request: ReceivedRequest, index: number) => Reply = () => 200): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks), at: Date.now() };
      const index = requests.length;
      requests.push(request);
      answer(reply(request, index), req, res, timers);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhook`,
    port,
    requests,
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function answer(reply: Reply, req: http.IncomingMessage, res: http.ServerResponse, timers: Set<NodeJS.Timeout>): void {
  const later = (ms: number, fn: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };
  if (typeof reply === 'number') {
    res.writeHead(reply, { 'content-type': 'text/plain' }).end(reply < 300 ? 'OK' : `status ${reply}`);
  } else if (reply === 'hang') {
    // Accept and never answer.
  } else if (reply === 'drop') {
    req.socket.destroy();
  } else if (reply === 'stall-body') {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
    res.write('partial');
  } else if (reply === 'huge-body') {
    res.writeHead(500, { 'content-type': 'text/plain' });
    const chunk = 'x'.repeat(64 * 1024);
    for (let index = 0; index < 80; index += 1) res.write(chunk); // 5 MiB
    res.end();
  } else if (reply === 'malformed') {
    req.socket.end('HTTP/1.1 banana\r\n\r\n');
  } else if ('delayMs' in reply) {
    later(reply.delayMs, () => res.writeHead(reply.status).end('late'));
  } else {
    res.writeHead(reply.status, { 'content-type': 'text/plain', ...reply.headers }).end(reply.body ?? '');
  }
}

/** A TCP port that speaks no HTTP: it accepts, writes garbage and closes. */
export async function startGarbageServer(): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.end('SSH-2.0-OpenSSH_9.2\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhook`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on: bind, read the number, close. */
export async function closedPortUrl(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}/webhook`;
}

/**
 * A raw HTTP/1.1 server that answers each request with an unsolicited `100 Continue` and then, a moment
 * later, `200 OK`; it records every request's X-Webhook-Id.
 */
export async function startContinueServer(): Promise<{ url: string; ids: string[]; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const ids: string[] = [];
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const headEnd = buffered.indexOf('\r\n\r\n');
        if (headEnd < 0) return;
        const head = buffered.slice(0, headEnd);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buffered.length < headEnd + 4 + length) return;
        buffered = buffered.slice(headEnd + 4 + length);
        ids.push(/\r\nx-webhook-id: *([^\r\n]*)/i.exec(head)?.[1] ?? '');
        socket.write('HTTP/1.1 100 Continue\r\n\r\n');
        setTimeout(() => socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nOK'), 20);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/webhook`,
    ids,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A port on 127.0.0.1 that drops connection attempts, as a host behind a firewall that drops packets does: a
 * child process listens with the shortest accept queue and never accepts (its event loop blocks as soon as it
 * has said its port), and the queue is filled first, so the kernel drops every further SYN and a client waits
 * for its connect timeout. Checked before it is handed out: one more connection must not get through.
 */
export async function startDroppingPort(): Promise<{ url: string; close(): Promise<void> }> {
  const script = `
    const server = require('node:net').createServer();
    // A backlog of 1: Node reads 0 as its default, 511. The queue then holds two completed handshakes.
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      require('node:fs').writeSync(1, String(server.address().port) + '\\n');
      // Never accept: block at once, before the event loop can (bounded, in case the test dies first).
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000);
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: net.Socket[] = [];
  const close = async () => {
    for (const socket of fillers) socket.destroy();
    child.kill('SIGKILL');
    if (child.exitCode === null && child.signalCode === null) await new Promise((resolve) => child.once('exit', resolve));
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.stdout.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim())));
    });
    for (let index = 0; index < 4; index += 1) fillers.push(net.connect(port, '127.0.0.1').on('error', () => undefined));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const probe = net.connect(port, '127.0.0.1').on('error', () => undefined);
    fillers.push(probe);
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 300);
      probe.once('connect', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (connected) throw new Error('startDroppingPort: a connection got through the full accept queue; the port does not drop connection attempts');
    return { url: `http://127.0.0.1:${port}/webhook`, close };
  } catch (error) {
    await close();
    throw error;
  }
}
