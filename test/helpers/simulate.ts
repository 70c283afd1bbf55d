import { processExpirations } from '../../src/commands/process-expirations.js';
import { settingsSet } from '../../src/commands/settings.js';
import type { OraclePolicy, SimEvent, SimLicense } from './calendar-oracle.js';
import { startReceiver } from './receiver.js';
import { workspace as sqliteWorkspace, type Workspace } from './workspace.js';

export interface Simulation {
  events: SimEvent[];
  abandoned: number;
}

/**
 * Seeds the licenses into a real database (a SQLite file unless `workspace` comes from `forEachDialect`) and runs the cron job once per instant, with the clock at that
 * instant, delivering to a real receiver. Returns what the receiver got, as the oracle states it, sorted. A
 * `zone` function is the time-zone setting at each run: the operator changes it (`settings set time-zone`) between runs.
 */
export async function simulate(
  zone: string | ((now: number) => string),
  licenses: readonly SimLicense[],
  runs: readonly number[],
  warningDays: number[],
  lookbackDays = 7,
  workspace: (config: Record<string, unknown>) => Workspace = sqliteWorkspace,
  policy?: OraclePolicy,
): Promise<Simulation> {
  const receiver = await startReceiver();
  try {
    const zoneAt = typeof zone === 'string' ? () => zone : zone;
    const ws = workspace({
      webhooks: { enabled: true, url: receiver.url, secret: 'sim' },
      expirations: { warningDays, lookbackDays, timeZone: zoneAt(runs[0] ?? 0), ...policy },
    });
    await ws.seed(
      licenses.map((license) => ({
        license_code: license.code,
        expires_at: license.expiresAt,
        updates_until: license.updatesUntil,
        ...(license.product === undefined ? {} : { product_id: license.product }),
      })),
    );
    let abandoned = 0;
    // Runs in stretches of one zone; a context reads its settings once, so each stretch gets its own.
    for (let start = 0; start < runs.length;) {
      const runZone = zoneAt(runs[start]!);
      let end = start;
      while (end < runs.length && zoneAt(runs[end]!) === runZone) end += 1;
      if (start > 0) await ws.run((context) => settingsSet(context, 'time-zone', runZone, new Date()));
      await ws.run(async (context) => {
        for (const instant of runs.slice(start, end)) {
          const now = new Date(instant);
          const result = await processExpirations(context, { now, clock: { now: () => now } });
          abandoned += result.abandoned;
        }
      });
      start = end;
    }
    const events = receiver.requests.map((request) => {
      const body = JSON.parse(request.body.toString('utf8'));
      const payload = body.payload;
      return {
        at: body.timestamp,
        code: payload.license_code,
        type: body.event_type,
        date: payload.expires_at ?? payload.expired_at ?? payload.updates_until,
        ...(payload.days_until_expiry === undefined ? {} : { days: payload.days_until_expiry }),
        ...(payload.days_since_expiry === undefined ? {} : { days: payload.days_since_expiry }),
      } as SimEvent;
    });
    return { events: sortEvents(events), abandoned };
  } finally {
    await receiver.close();
  }
}

export function sortEvents(events: readonly SimEvent[]): SimEvent[] {
  const key = (event: SimEvent) => `${event.at} ${event.code} ${event.type}`;
  return [...events].sort((a, b) => key(a).localeCompare(key(b)));
}
