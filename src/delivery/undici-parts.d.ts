// The three parts of undici the transport loads (see transport.ts): its package has no exports map, so these
// paths resolve, but they are not its typed public API. Their types are the public ones of the same objects.
declare module 'undici/lib/dispatcher/agent.js' {
  import { Agent } from 'undici';
  export default Agent;
}

declare module 'undici/lib/core/connect.js' {
  import { buildConnector } from 'undici';
  export default buildConnector;
}

declare module 'undici/lib/api/index.js' {
  import type { Dispatcher } from 'undici';
  /** Dispatcher.prototype.request, which undici's index puts on every dispatcher. */
  export function request(this: Dispatcher, options: Dispatcher.RequestOptions): Promise<Dispatcher.ResponseData>;
}
