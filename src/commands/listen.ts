import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { usageError } from '../errors.js';
import { verifySignature, type VerifyResult } from '../webhooks/verify.js';

export interface ListenOptions {
  /** 0 picks a free port. */
  port: number;
  host: string;
  secret: string | null;
  /** The HTTP status every request is answered with. */
  respond: number;
}

export interface ReceivedWebhook {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** null when no secret was given to check against. */
  verification: VerifyResult | null;
  status: number;
}

export interface Listener {
  url: string;
  close(): Promise<void>;
}

/** A local receiver for developing against: records nothing, reports each request, answers `respond`. */
export async function listen(options: ListenOptions, onRequest: (request: ReceivedWebhook) => void): Promise<Listener> {
  const status = options.respond;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const signature = String(req.headers['x-webhook-signature'] ?? '');
      const verification = options.secret ? verifySignature(body, signature, options.secret) : null;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'OK' : `answering ${status} as asked (--respond)`);
      onRequest({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, verification, status });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? usageError(`Port ${options.port} is already in use: pick another with --port.`, { cause: error }) : error),
    );
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
