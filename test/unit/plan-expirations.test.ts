import { describe, expect, test } from '@jest/globals';
import type { RawLicense } from '../../src/expirations/license.js';
import { expiredWithoutEvent, planExpirations, schedulesOf, type PlanPolicy } from '../../src/expirations/plan-expirations.js';
import type { ProductSchedules } from '../../src/expirations/reminder-policy.js';
import { parseEventKey } from '../../src/expirations/rules.js';

// The whole decision of a run, without a database: raw rows in, the plan out.
const NOW = new Date('2025-01-23T08:00:00Z');

function policy(overrides: { warningDays?: number[]; afterExpiryDays?: number[]; products?: ProductSchedules; lookbackDays?: number; latestRun?: Date } = {}) {
  const expirations = { warningDays: overrides.warningDays ?? [7, 1], afterExpiryDays: overrides.afterExpiryDays ?? [], products: overrides.products ?? {} };
  const rules: PlanPolicy = { ...expirations, lookbackDays: overrides.lookbackDays ?? 7, timeZone: 'UTC', schedules: schedulesOf(expirations) };
  if (overrides.latestRun) rules.latestRun = overrides.latestRun;
  return rules;
}

let nextId = 1;
function aLicense(overrides: Partial<RawLicense> = {}): RawLicense {
  const id = overrides.id ?? nextId++;
  return {
    id,
    license_code: `L${id}`,
    product_id: null,
    product_name: null,
    customer_id: null,
    email: `l${id}@example.com`,
    status: 'active',
    expires_at: null,
    updates_until: null,
    ...overrides,
  };
}

const recorded = (...keys: string[]) => keys.map((key) => parseEventKey(key, 'UTC')!);
const plan = (candidates: RawLicense[], keys: string[] = [], rules = policy(), now = NOW) => planExpirations({ candidates }, recorded(...keys), now, rules);
const notices = (result: ReturnType<typeof plan>) => result.events.map(({ event, license }) => `${license.code} ${event.key}`);

describe('planExpirations: re-arming what a license change superseded, since undone', () => {
  // Records as the loader marks them: `rearmable` when superseded because of the license, never delivered.
  const mark = (key: string, rearmable = true) => ({ ...parseEventKey(key, 'UTC')!, key, ...(rearmable ? { rearmable: true } : {}) });
  const planWith = (candidates: RawLicense[], records: ReturnType<typeof mark>[], rules = policy(), now = NOW) =>
    planExpirations({ candidates }, records, now, rules);
  const rearmed = (result: ReturnType<typeof planWith>) => result.rearm.map(({ event, license }) => `${license.code} ${event.key}`);

  test('an event the rules call for again, recorded only under its own key and re-armable: re-armed, due, counted in the plan', () => {
    const expired = aLicense({ id: 50, expires_at: '2025-01-23T06:00:00Z' });
    const result = planWith([expired], [mark('license.expired:50:2025-01-23')]);
    expect(notices(result)).toEqual([]);
    expect(rearmed(result)).toEqual(['L50 license.expired:50:2025-01-23']);
    expect(result.planLines).toEqual([{ type: 'license.expired', count: 1 }]);
    expect(result.expire).toEqual([{ id: 50, expires_at: '2025-01-23T06:00:00Z' }]);
    // One delivery of it delivered (another endpoint), the other re-armable: re-armed (only the latter is touched).
    expect(rearmed(planWith([expired], [mark('license.expired:50:2025-01-23', false), mark('license.expired:50:2025-01-23')]))).toEqual([
      'L50 license.expired:50:2025-01-23',
    ]);
    // Not re-armable (delivered, or ended by an operator): covered, as before.
    expect(rearmed(planWith([expired], [mark('license.expired:50:2025-01-23', false)]))).toEqual([]);
  });

  test('a warning: re-armed while its threshold holds, never once the expired of that date is recorded, nor after its expiry on the real clock', () => {
    const soon = aLicense({ id: 51, expires_at: '2025-01-24T06:00:00Z' });
    expect(rearmed(planWith([soon], [mark('license.expiring:51:2025-01-24:1d')]))).toEqual(['L51 license.expiring:51:2025-01-24:1d']);
    // The expired of the same date recorded (a catch-up run's --now before the expiry): the warning stays covered.
    expect(rearmed(planWith([soon], [mark('license.expiring:51:2025-01-24:1d'), mark('license.expired:51:2025-01-24', false)]))).toEqual([]);
    expect(rearmed(planWith([soon], [mark('license.expiring:51:2025-01-24:1d'), mark('license.expired:51:2025-01-24')]))).toEqual([]);
    // A smaller warning recorded covers it too; a larger one superseded does not make the 1-day one re-armed.
    const week = aLicense({ id: 52, expires_at: '2025-01-30T06:00:00Z' });
    expect(rearmed(planWith([week], [mark('license.expiring:52:2025-01-30:7d'), mark('license.expiring:52:2025-01-30:1d', false)]))).toEqual([]);
    // A catch-up run: the rules at --now call for it, but the expiry has passed on the real clock (the check would supersede it again).
    expect(rearmed(planWith([soon], [mark('license.expiring:51:2025-01-24:1d')], { ...policy(), clockNow: new Date('2025-01-24T07:00:00Z') }))).toEqual([]);
  });

  test("under the first release's key (the UTC instant) it is never sent again", () => {
    const expired = aLicense({ id: 53, expires_at: '2025-01-23T06:00:00Z' });
    expect(rearmed(planWith([expired], [mark('license.expired:53:2025-01-23T06:00:00Z')]))).toEqual([]);
  });
});

describe('planExpirations', () => {
  test('warning days: the smallest threshold reached, once per expiry; a later threshold is still due', () => {
    const week = aLicense({ id: 1, expires_at: '2025-01-30' });
    const day = aLicense({ id: 2, expires_at: '2025-01-24' });
    const later = aLicense({ id: 3, expires_at: '2025-02-15' });
    const result = plan([week, day, later]);
    expect(notices(result)).toEqual(['L1 license.expiring:1:2025-01-30:7d', 'L2 license.expiring:2:2025-01-24:1d']);
    expect(result.planLines).toEqual([
      { type: 'license.expiring', threshold: 7, count: 1 },
      { type: 'license.expiring', threshold: 1, count: 1 },
    ]);
    expect(result.events[0]!.license).toMatchObject({ id: 1, code: 'L1', status: 'active', expiresAt: new Date('2025-01-30T00:00:00Z') });
    // Recorded at 7 days: not again at 7, but the 1-day warning is new.
    expect(notices(plan([week], ['license.expiring:1:2025-01-30:7d']))).toEqual([]);
    expect(notices(plan([week], ['license.expiring:1:2025-01-30:7d'], policy(), new Date('2025-01-29T08:00:00Z')))).toEqual([
      'L1 license.expiring:1:2025-01-30:1d',
    ]);
  });

  test('expired: the event, and the license to mark expired with its stored expiry', () => {
    const result = plan([aLicense({ id: 4, expires_at: '2025-01-20 10:00:00' })]);
    expect(notices(result)).toEqual(['L4 license.expired:4:2025-01-20']);
    expect(result.expire).toEqual([{ id: 4, expires_at: '2025-01-20 10:00:00' }]);
    expect(result.reactivate).toEqual([]);
    // Announced before: no event, but the status still follows the rules.
    const again = plan([aLicense({ id: 4, expires_at: '2025-01-20 10:00:00' })], ['license.expired:4:2025-01-20']);
    expect(again.events).toEqual([]);
    expect(again.expire).toEqual([{ id: 4, expires_at: '2025-01-20 10:00:00' }]);
  });

  test('a renewal re-arms: the expired license becomes active and is warned about its new date', () => {
    const renewed = aLicense({ id: 5, status: 'expired', expires_at: '2025-01-30' });
    const result = plan([renewed], ['license.expired:5:2025-01-10', 'license.expiring:5:2025-01-10:1d']);
    expect(result.reactivate).toEqual([5]);
    expect(notices(result)).toEqual(['L5 license.expiring:5:2025-01-30:7d']);
    // Made lifetime: active again, nothing to announce.
    expect(plan([aLicense({ id: 6, status: 'expired' })])).toMatchObject({ reactivate: [6], events: [] });
  });

  test('suspended and revoked licenses get no notice and keep their status', () => {
    const result = plan([
      aLicense({ status: 'suspended', expires_at: '2025-01-30' }),
      aLicense({ status: 'revoked', expires_at: '2025-01-20', updates_until: '2025-01-21' }),
    ]);
    expect(result).toMatchObject({ events: [], expire: [], reactivate: [], beyondLookback: [], skipped: [] });
  });

  test('lookback: an expiry further back is marked expired with no event, and named with the --announce-since date', () => {
    const old = aLicense({ id: 7, expires_at: '2025-01-10' });
    const result = plan([old]);
    expect(result.events).toEqual([]);
    expect(result.expire).toEqual([{ id: 7, expires_at: '2025-01-10' }]);
    expect(result.beyondLookback.map((license) => license.id)).toEqual([7]);
    expect(expiredWithoutEvent(result.beyondLookback, [{ id: 8, license_code: 'L8', expires_at: '2024-12-01' }], 'UTC')).toEqual({
      licenses: [
        { licenseId: 8, licenseCode: 'L8', expiresAt: '2024-12-01T00:00:00Z' },
        { licenseId: 7, licenseCode: 'L7', expiresAt: '2025-01-10T00:00:00Z' },
      ],
      announceSince: '2024-12-01',
    });
    // A longer lookback (--announce-since) announces it.
    expect(notices(plan([old], [], policy({ lookbackDays: 14 })))).toEqual(['L7 license.expired:7:2025-01-10']);
  });

  test('a catch-up after the fact: no warning about an expiry a later run saw pass, no renewal of an expiry it announced', () => {
    const latestRun = new Date('2025-02-01T08:00:00Z');
    const passed = aLicense({ id: 9, expires_at: '2025-01-25' });
    expect(notices(plan([passed]))).toEqual(['L9 license.expiring:9:2025-01-25:7d']);
    expect(plan([passed], [], policy({ latestRun })).events).toEqual([]);
    // A later run announced the expiry: at this earlier now the stored `expired` is not taken for a renewal.
    const announced = aLicense({ id: 10, status: 'expired', expires_at: '2025-01-25' });
    expect(plan([announced], ['license.expired:10:2025-01-25'])).toMatchObject({ events: [], reactivate: [] });
    expect(plan([announced])).toMatchObject({ reactivate: [10] });
  });

  test('per-product schedules and reminders: a disabled product gets no notice but its status changes', () => {
    const rules = policy({ afterExpiryDays: [2], products: { PRO: { warningDays: [14] }, OFF: { enabled: false } } });
    const result = plan(
      [
        aLicense({ id: 11, product_id: 'PRO', expires_at: '2025-02-05' }),
        aLicense({ id: 12, expires_at: '2025-01-21' }),
        aLicense({ id: 13, product_id: 'OFF', expires_at: '2025-01-22' }),
      ],
      ['license.expired:12:2025-01-21'],
      rules,
    );
    expect(notices(result)).toEqual(['L11 license.expiring:11:2025-02-05:14d', 'L12 license.expired_reminder:12:2025-01-21:2d']);
    expect(result.expire.map(({ id }) => id)).toEqual([12, 13]);
    expect(result.planLines).toEqual([
      { type: 'license.expired_reminder', threshold: 2, count: 1 },
      { type: 'license.expiring', threshold: 14, count: 1 },
    ]);
  });

  test('rows that cannot be read are skipped with the reason, each named once', () => {
    const result = planExpirations(
      {
        candidates: [aLicense({ id: 14, expires_at: '12/31/2025' }), aLicense({ id: 15, license_code: null, expires_at: '2025-01-30' })],
        unreadable: [
          { id: 14, code: 'L14', problem: 'expires_at "12/31/2025" is not a date' },
          { id: '18446744073709551615', code: 'BIG', problem: 'its id is too large' },
        ],
      },
      [],
      NOW,
      policy(),
    );
    expect(result.events).toEqual([]);
    expect(result.skipped).toEqual([
      { id: 14, code: 'L14', problem: 'expires_at "12/31/2025" is not a date' },
      { id: 15, code: null, problem: 'license_code is empty' },
      { id: '18446744073709551615', code: 'BIG', problem: 'its id is too large' },
    ]);
  });
});
