import { processExpirations } from '../../src/commands/process-expirations.js';
import { settingsSet } from '../../src/commands/settings.js';
import { eventBody, eventSubject } from '../../src/expirations/license-events.js';
import type { RawLicense } from '../../src/expirations/license.js';
import { planExpirations, scanWindow, schedulesOf, type PlanPolicy } from '../../src/expirations/plan-expirations.js';
import type { ProductSchedules } from '../../src/expirations/reminder-policy.js';
import { parseEventKey, type RecordedEvent } from '../../src/expirations/rules.js';
import { formatUtc } from '../../src/time.js';
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
    const events = receiver.requests.map((request) => simEvent(request.body.toString('utf8')));
    return { events: sortEvents(events), abandoned };
  } finally {
    await receiver.close();
  }
}

/** A delivered body as the oracle states it. */
function simEvent(text: string): SimEvent {
  const body = JSON.parse(text);
  const payload = body.payload;
  return {
    at: body.timestamp,
    code: payload.license_code,
    type: body.event_type,
    date: payload.expires_at ?? payload.expired_at ?? payload.updates_until,
    ...(payload.days_until_expiry === undefined ? {} : { days: payload.days_until_expiry }),
    ...(payload.days_since_expiry === undefined ? {} : { days: payload.days_since_expiry }),
  } as SimEvent;
}

/**
 * The same runs through the pure planner alone, with no database and no HTTP: the licenses are raw rows in
 * memory, each run reads the candidates its scan window names (as the own-table scans select them), and what
 * it plans is "recorded" (keys, instants, statuses) for the next run; the events are the bodies it would send.
 */
export function simulatePlan(
  zone: string | ((now: number) => string),
  licenses: readonly SimLicense[],
  runs: readonly number[],
  warningDays: number[],
  lookbackDays = 7,
  policy?: OraclePolicy,
): SimEvent[] {
  const zoneAt = typeof zone === 'string' ? () => zone : zone;
  const rows: RawLicense[] = licenses.map((license, index) => ({
    id: index + 1,
    license_code: license.code,
    product_id: license.product ?? null,
    product_name: null,
    customer_id: null,
    email: null,
    status: 'active',
    expires_at: license.expiresAt,
    updates_until: license.updatesUntil,
  }));
  const expirations = { warningDays, afterExpiryDays: policy?.afterExpiryDays ?? [], products: (policy?.products ?? {}) as ProductSchedules };
  // Today's keys name the date itself, so a record reads the same in any later zone.
  const recorded: RecordedEvent[] = [];
  const byId = new Map(rows.map((row) => [row.id, row]));
  const events: SimEvent[] = [];
  let latestRun: Date | undefined;
  for (const instant of runs) {
    const now = new Date(instant);
    const timeZone = zoneAt(instant);
    const rules: PlanPolicy = { ...expirations, lookbackDays, timeZone, schedules: schedulesOf(expirations), latestRun };
    const { fromDay, expiresBeforeDay, supportBeforeDay } = scanWindow(now, rules);
    const between = (text: string | null, from: string, before?: string) => text !== null && text >= from && (before === undefined || text < before);
    // The own table's scans (licenses.repository.ts findDueCandidates), as text comparisons.
    const candidates = rows.filter(
      (row) =>
        (row.status === 'active' && between(row.expires_at, fromDay, expiresBeforeDay)) ||
        (row.status === 'expired' && (row.expires_at === null || between(row.expires_at, fromDay))) ||
        (['active', 'expired'].includes(row.status) && between(row.updates_until, fromDay, supportBeforeDay)),
    );
    const plan = planExpirations({ candidates }, recorded, now, rules);
    for (const { event, license } of plan.events) {
      recorded.push(parseEventKey(event.key, timeZone, formatUtc(event.date))!);
      events.push(simEvent(eventBody(event, eventSubject(license), now)));
    }
    for (const { id } of plan.expire) if (byId.get(id)!.status === 'active') byId.get(id)!.status = 'expired';
    for (const id of plan.reactivate) if (byId.get(id)!.status === 'expired') byId.get(id)!.status = 'active';
    // Expired before the window: marked expired with no event (expireLongPast).
    for (const row of rows)
      if (row.status === 'active' && row.expires_at !== null && /^\d{4}-\d{2}-\d{2}/.test(row.expires_at) && row.expires_at < fromDay) row.status = 'expired';
    latestRun = latestRun && latestRun.getTime() > instant ? latestRun : now;
  }
  return sortEvents(events);
}

export function sortEvents(events: readonly SimEvent[]): SimEvent[] {
  const key = (event: SimEvent) => `${event.at} ${event.code} ${event.type}`;
  return [...events].sort((a, b) => key(a).localeCompare(key(b)));
}
