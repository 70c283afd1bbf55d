import type { $Fetch } from 'ofetch';
import type { Transport } from './transport.js';

/**
 * A run's transport, loaded and opened when its first delivery is claimed: a run with nothing to send (most
 * cron runs) never loads undici or ofetch. A given fetch (tests) is used as it is and never closed here.
 */
export class LazyTransport {
  private opened: Promise<Transport> | undefined;

  /** `connectTimeoutMs`: the run's attempt timeout (see createTransport). */
  constructor(
    private readonly given: $Fetch | undefined,
    private readonly connectTimeoutMs: number,
  ) {}

  async fetch(): Promise<$Fetch> {
    if (this.given) return this.given;
    this.opened ??= import('./transport.js').then((transport) => transport.createTransport({ connectTimeoutMs: this.connectTimeoutMs }));
    return (await this.opened).fetch;
  }

  async close(): Promise<void> {
    if (this.opened) await (await this.opened).close();
  }
}
