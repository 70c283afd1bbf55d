import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { systemClock, type Clock } from '../clock.js';
import { usageError } from '../errors.js';
import { DEFAULT_MAX_BODY_BYTES, verifyRequest, type RequestVerifyResult } from '../webhooks/verify.js';

/** Well under the usual limit of 1,024 open files, so idle clients never exhaust the process's descriptors. */
const DEFAULT_MAX_CONNECTIONS = 100;
/** The tool sends its headers and body at once and gives up after 10 s; slower clients are holding a slot. */
const HEADERS_TIMEOUT_MS = 10_000;
const REQUEST_TIMEOUT_MS = 30_000;

export interface ListenOptions {
  /** Judges a Standard Webhooks timestamp; the system clock when not given. */
  clock?: Clock;
  /** 0 picks a free port. */
  port: number;
  host: string;
  secret: string | null;
  /** More secrets to accept (an endpoint's old and new during a rotation): each checked, the one that matched named. */
  moreSecrets?: readonly string[];
  /** The HTTP status every request with an acceptable signature is answered with. */
  respond: number;
  /** Bodies larger than this many bytes get 413; default DEFAULT_MAX_BODY_BYTES. */
  maxBody?: number;
  /** Open connections at most; at the limit the oldest is closed for each new one. Default DEFAULT_MAX_CONNECTIONS. */
  maxConnections?: number;
  /** Said once, the first time the connection limit closes a connection. */
  onNotice?: (text: string) => void;
}

export interface ReceivedWebhook {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** null when no secret was given to check against. */
  verification: RequestVerifyResult | null;
  /** How many secrets were checked (the result names the one that matched). */
  secrets?: number;
  status: number;
  /** Why the request was refused before its signature could be checked (413), if it was. */
  refused?: string;
}

export interface Listener {
  url: string;
  close(): Promise<void>;
}

/**
 * A local receiver for developing against (not a production server): records nothing, reports each request. With a secret it answers
 * 401 to a missing or invalid signature, as a real receiver must; otherwise `respond`. A malformed request
 * gets a 4xx answer and never ends the process.
 */
export async function listen(options: ListenOptions, onRequest: (request: ReceivedWebhook) => void): Promise<Listener> {
  const maxBody = options.maxBody ?? DEFAULT_MAX_BODY_BYTES;
  const respond = options.respond;
  const maxConnections = options.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const serverOptions: http.ServerOptions = { headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, connectionsCheckingInterval: 1000 };
  const server = http.createServer(serverOptions, (req, res) => {
    const report = (request: Omit<ReceivedWebhook, 'method' | 'url' | 'headers'>) => {
      try {
        onRequest({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, ...request });
      } catch {
        // Printing one request must not stop the receiver.
      }
    };
    const refuse = (status: number, reason: string) => {
      res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' }).end(`${reason}\n`);
      report({ body: Buffer.alloc(0), verification: null, status, refused: reason });
    };
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) {
      refuse(413, `body of ${declared} bytes is over the limit of ${maxBody} (--max-body)`);
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > maxBody) {
        refused = true;
        chunks.length = 0;
        refuse(413, `body over the limit of ${maxBody} bytes (--max-body)`);
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => req.destroy());
    req.on('end', () => {
      if (refused) return;
      const body = Buffer.concat(chunks);
      // X-Webhook-Signature, and the Standard Webhooks headers when the request has them, against every secret given.
      const secrets = [...(options.secret ? [options.secret] : []), ...(options.moreSecrets ?? [])];
      const verification =
        secrets.length > 0 ? verifyRequest(body, req.headers, secrets, Math.floor((options.clock ?? systemClock).now().getTime() / 1000)) : null;
      const status = verification && !verification.valid ? 401 : respond;
      const text = status === 401 ? 'invalid or missing X-Webhook-Signature' : status < 300 ? 'OK' : `answering ${status} as asked (--respond)`;
      res.writeHead(status, { 'content-type': 'text/plain' }).end(text);
      report({ body, verification, status, ...(secrets.length > 1 ? { secrets: secrets.length } : {}) });
    });
  });
  // Bytes that are not HTTP, oversized headers, a reset: answer 400 (408 to a client too slow) when the socket still can, and go on.
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    const status = error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else socket.destroy();
  });
  // Oldest first: at the limit the oldest connection gives way, so idle or slow clients holding every slot
  // cannot lock a new request out, and never more than the limit hold a file descriptor.
  const open = new Set<Socket>();
  let noticed = false;
  server.on('connection', (socket: Socket) => {
    if (open.size >= maxConnections) {
      const oldest = open.values().next().value!;
      open.delete(oldest);
      oldest.destroy();
      if (!noticed) options.onNotice?.(`${maxConnections} connections are open (--max-connections): closing the oldest for each new one.`);
      noticed = true;
    }
    open.add(socket);
    socket.on('close', () => open.delete(socket));
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
