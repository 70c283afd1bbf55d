import { afterEach } from '@jest/globals';
import { startReceiver, type Receiver, type ReceivedRequest, type Reply } from './receiver.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

/**
 * Receivers (and TCP proxies in front of them, to refuse connections and accept them again) that a test starts,
 * all closed after each test: registers the afterEach where it is called (at the top of a test file).
 */
export function receiversPerTest(): {
  receiver: (reply?: (request: ReceivedRequest, index: number) => Reply) => Promise<Receiver>;
  proxyFor: (target: Receiver) => Promise<TcpProxy>;
} {
  const receivers: Receiver[] = [];
  const proxies: TcpProxy[] = [];
  afterEach(async () => {
    for (const proxy of proxies.splice(0)) await proxy.close();
    await Promise.all(receivers.splice(0).map((entry) => entry.close()));
  });
  return {
    receiver: async (reply) => {
      const started = await startReceiver(reply);
      receivers.push(started);
      return started;
    },
    proxyFor: async (target) => {
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: target.port });
      proxies.push(proxy);
      return proxy;
    },
  };
}
