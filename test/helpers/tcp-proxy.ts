import net from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of a database server, to make the network fail as a test needs without
 * touching the server: a frozen server or black-holed link (`pause`), a failover or proxy restart (`reset`),
 * a server that is down for a while (`refuse`).
 */
export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string;
  /** Forward nothing more, either way, on open or new connections (they stay open); `resume` lets it through. */
  pause(): void;
  resume(): void;
  /** Resets (TCP RST) every open connection, on both sides. */
  reset(): void;
  /**
   * The server side of every open connection goes away without the client being told (a server host that
   * restarted, an address a failover moved): the client's next bytes on it get a reset.
   */
  sever(): void;
  /** Refuses new connections (ECONNREFUSED) until `accept`; open ones are left alone. */
  refuse(): Promise<void>;
  accept(): Promise<void>;
  /** Holds every chunk (and close) this long before passing it on, both ways: a distant or congested link. */
  delay(ms: number): void;
  /** Resolves once no byte has passed either way for `ms` (nothing is in flight: a statement sent is answered). */
  quiet(ms: number): Promise<void>;
  /** Connections open through the proxy now. */
  open(): number;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  server: net.Socket;
  severed: boolean;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let paused = false;
  let latencyMs = 0;
  let lastTraffic = Date.now();
  // Equal delays fire in the order they were set: the bytes keep their order.
  const later = (fn: () => void) => (latencyMs > 0 ? void setTimeout(fn, latencyMs) : fn());
  let listener: net.Server | undefined;
  let port = 0;

  // While paused nothing gets through, a close neither: the other side learns of it only after `resume`.
  const whenFlowing = (fn: () => void) => {
    if (!paused) return fn();
    const later = setInterval(() => {
      if (paused) return;
      clearInterval(later);
      fn();
    }, 20);
  };
  const forward = (pair: Pair, from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk: Buffer) => {
      lastTraffic = Date.now();
      if (!pair.severed) later(() => to.write(chunk));
      else if (from === pair.client) from.resetAndDestroy();
    });
    from.on('end', () => pair.severed || whenFlowing(() => later(() => to.end())));
    from.on('error', () => pair.severed || whenFlowing(() => later(() => to.destroy())));
    from.on('close', () => pair.severed || whenFlowing(() => later(() => to.destroy())));
  };

  const onConnection = (client: net.Socket) => {
    const server = net.connect(target.port, target.host);
    const pair = { client, server, severed: false };
    pairs.add(pair);
    client.on('close', () => pairs.delete(pair));
    forward(pair, client, server);
    forward(pair, server, client);
    if (paused) {
      client.pause();
      server.pause();
    }
  };

  const listen = async () => {
    listener = net.createServer(onConnection);
    await new Promise<void>((resolve, reject) => {
      listener!.once('error', reject);
      listener!.listen(port, '127.0.0.1', () => resolve());
    });
    port = (listener.address() as AddressInfo).port;
  };
  // The port stops listening at once; close()'s callback would wait for the open connections to end.
  const stopListening = async () => {
    listener?.close();
    listener = undefined;
  };

  await listen();
  return {
    port,
    via(url) {
      const parsed = new URL(url);
      parsed.hostname = '127.0.0.1';
      parsed.port = String(port);
      return parsed.toString();
    },
    pause() {
      paused = true;
      for (const { client, server } of pairs) {
        client.pause();
        server.pause();
      }
    },
    resume() {
      paused = false;
      for (const { client, server } of pairs) {
        client.resume();
        server.resume();
      }
    },
    reset() {
      for (const { client, server } of pairs) {
        client.resetAndDestroy();
        server.resetAndDestroy();
      }
      pairs.clear();
    },
    sever() {
      for (const pair of pairs) {
        pair.severed = true;
        pair.server.destroy();
      }
    },
    async quiet(ms) {
      while (Date.now() - lastTraffic < ms) await new Promise((resolve) => setTimeout(resolve, 10));
    },
    delay(ms) {
      latencyMs = ms;
    },
    refuse: stopListening,
    async accept() {
      if (!listener) await listen();
    },
    open: () => pairs.size,
    async close() {
      paused = false;
      await stopListening();
      for (const { client, server } of pairs) {
        client.destroy();
        server.destroy();
      }
      pairs.clear();
    },
  };
}
