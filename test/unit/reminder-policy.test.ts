import { describe, expect, test } from '@jest/globals';
import { z } from 'zod';
import { describeZodError } from '../../src/config/schema.js';
import { dueReminder, reminderCovered } from '../../src/expirations/after-expiry.js';
import { addDays, startOfDayInZone } from '../../src/expirations/calendar.js';
import {
  applyProductSettings,
  dayListProblems,
  formatDayList,
  lookbackOverlapWarnings,
  parseDayList,
  parseProductSetting,
  policyFor,
  productIdProblem,
  productSettingKey,
  readProductSettingKey,
  reminderPolicyConfigShape,
  unknownProductWarnings,
} from '../../src/expirations/reminder-policy.js';
import { decide, RecordedEvents, type RecordedEvent } from '../../src/expirations/rules.js';

// The shape the config's `expirations` object gains, with one existing key beside it.
const expirations = z.strictObject({ lookbackDays: z.int().default(7), ...reminderPolicyConfigShape });
const problems = (input: unknown) => {
  const parsed = expirations.safeParse(input);
  return parsed.success ? [] : describeZodError(parsed.error);
};

describe('expirations.products and expirations.afterExpiryDays in the config', () => {
  test('defaults change nothing: no after-expiry days, no product schedules', () => {
    expect(expirations.parse({})).toEqual({ lookbackDays: 7, afterExpiryDays: [], products: {} });
  });

  test('a valid schedule per product, each field optional', () => {
    const input = {
      afterExpiryDays: [1, 7],
      products: { 'PROD-001': { warningDays: [30, 7, 1], afterExpiryDays: [1], enabled: true }, 'PROD-002': { enabled: false }, 'PROD-003': {} },
    };
    expect(expirations.parse(input)).toEqual({ lookbackDays: 7, ...input });
  });

  test('each bad day is named with its key, its position and why', () => {
    expect(problems({ products: { ok: { warningDays: [1, 1, -2, 2.5, 4000] } } })).toEqual([
      'products.ok.warningDays.1: 1 appears more than once',
      'products.ok.warningDays.2: -2 is negative: warning days count days before the expiry date (0 is the expiry date itself)',
      'products.ok.warningDays.3: 2.5 is not a whole number of days',
      'products.ok.warningDays.4: 4000 is more than 3650 days (ten years)',
    ]);
    expect(problems({ afterExpiryDays: [0, 3651, -1] })).toEqual([
      'afterExpiryDays.0: 0 is the expiry date itself, the day of license.expired: after-expiry days start at 1',
      'afterExpiryDays.1: 3651 is more than 3650 days (ten years)',
      'afterExpiryDays.2: -1 is negative: after-expiry days count days after the expiry date, from 1',
    ]);
    expect(problems({ products: { p: { afterExpiryDays: ['3'] } } })).toEqual(['products.p.afterExpiryDays.0: expected a whole number of days, not "3"']);
    expect(problems({ afterExpiryDays: 'none' })).toEqual(['afterExpiryDays: expected a list of whole days, e.g. [1, 7]; [] for none']);
  });

  test('warning day 0 (the expiry date itself) is allowed; after-expiry day 0 is not', () => {
    expect(problems({ products: { p: { warningDays: [0] } } })).toEqual([]);
    expect(dayListProblems([0], 'after-expiry')).toHaveLength(1);
    expect(dayListProblems([1, 3650], 'after-expiry')).toEqual([]);
  });

  test('a list over 365 entries is one problem, not one per entry', () => {
    const days = Array.from({ length: 366 }, (_, index) => index + 1);
    expect(problems({ afterExpiryDays: days })).toEqual(['afterExpiryDays: has 366 days; at most 365 are accepted (one notice a day for a year)']);
    expect(problems({ afterExpiryDays: days.slice(0, 365) })).toEqual([]);
    expect(problems({ products: { p: { warningDays: Array.from({ length: 1000 }, (_, index) => index) } } })).toEqual([
      'products.p.warningDays: has 1000 days; at most 365 are accepted (one notice a day for a year)',
    ]);
  });

  test('product ids: bad ones named, unknown fields named, a non-object named', () => {
    expect(problems({ products: { ' pro': {}, ['x'.repeat(65)]: {}, 'a\nb': {}, p: 5, q: { enabled: 'yes', warning: [7] } } })).toEqual([
      'products. pro: the product id " pro" starts or ends with a space: product ids are matched exactly',
      `products.${'x'.repeat(65)}: the product id "${'x'.repeat(40)}..." is 65 characters long; at most 64 are accepted`,
      'products.a\nb: the product id "a\\nb" contains a control character',
      'products.p: expected a product schedule such as { "warningDays": [30, 7, 1], "afterExpiryDays": [1], "enabled": true }',
      'products.q.enabled: must be true or false',
      'products.q: unknown key "warning": a product schedule has warningDays, afterExpiryDays and enabled',
    ]);
    expect(problems({ products: [] })).toEqual(['products: expected an object keyed by product id, e.g. { "PROD-001": { "warningDays": [30, 7, 1] } }']);
    expect(productIdProblem('')).toBe('a product id must not be empty');
    expect(productIdProblem('x'.repeat(64))).toBeUndefined();
  });

  test('a "__proto__" product in a JSON file is refused, not dropped without a word', () => {
    expect(problems(JSON.parse('{"products":{"__proto__":{"enabled":false}}}'))).toEqual(['products.__proto__: "__proto__" cannot be a product id']);
  });
});

describe('policyFor', () => {
  const global = { warningDays: [7, 1], afterExpiryDays: [] };
  const products = { PRO: { warningDays: [30, 7, 1], afterExpiryDays: [1, 7] }, TRIAL: { afterExpiryDays: [2] }, OLD: { enabled: false } };

  test('a named product takes its own fields and the global values for the rest', () => {
    expect(policyFor('PRO', global, products)).toEqual({ warningDays: [30, 7, 1], afterExpiryDays: [1, 7], enabled: true });
    expect(policyFor('TRIAL', global, products)).toEqual({ warningDays: [7, 1], afterExpiryDays: [2], enabled: true });
    expect(policyFor('OLD', global, products)).toEqual({ warningDays: [7, 1], afterExpiryDays: [], enabled: false });
  });

  test('a product not named, a license without a product, and ids that are Object.prototype names take the global values', () => {
    for (const id of ['BASIC', null, 'constructor', 'toString', '__proto__', 'pro']) {
      expect(policyFor(id, global, products)).toEqual({ warningDays: [7, 1], afterExpiryDays: [], enabled: true });
    }
  });
});

describe('the settings text form', () => {
  test('keys: product:<id>:<field>, ids with colons included; bad keys say how to write them', () => {
    expect(productSettingKey('PROD-001', 'warning-days')).toBe('product:PROD-001:warning-days');
    expect(readProductSettingKey('product:PROD-001:warning-days')).toEqual({ productId: 'PROD-001', field: 'warning-days' });
    expect(readProductSettingKey('product:urn:x:1:after-expiry-days')).toEqual({ productId: 'urn:x:1', field: 'after-expiry-days' });
    expect(readProductSettingKey('warning-days')).toBeUndefined();
    expect(readProductSettingKey('product:PROD-001')).toEqual({
      problem:
        '"product:PROD-001" names no field: write it as product:<product id>:<field> with the field one of warning-days, after-expiry-days, enabled (e.g. product:PROD-001:warning-days)',
    });
    expect(readProductSettingKey('product:PROD-001:warningDays')).toMatchObject({
      problem: expect.stringContaining('"warningDays" in "product:PROD-001:warningDays" is not a product setting'),
    });
    expect(readProductSettingKey('product::enabled')).toEqual({ problem: 'a product id must not be empty (in "product::enabled")' });
  });

  test('values read back in the order the notices go out, in the words of the global keys', () => {
    expect(parseProductSetting('product:P:warning-days', ' 1, 30 ,7')).toEqual({ productId: 'P', field: 'warningDays', value: [30, 7, 1], text: '30,7,1' });
    expect(parseProductSetting('product:P:after-expiry-days', '7,1')).toEqual({ productId: 'P', field: 'afterExpiryDays', value: [1, 7], text: '1,7' });
    expect(parseProductSetting('product:P:after-expiry-days', 'NONE')).toEqual({ productId: 'P', field: 'afterExpiryDays', value: [], text: 'none' });
    expect(parseProductSetting('product:P:enabled', 'False')).toEqual({ productId: 'P', field: 'enabled', value: false, text: 'false' });
    expect(formatDayList([1, 30, 7], 'warning')).toBe('30,7,1');
    expect(formatDayList([], 'after-expiry')).toBe('none');
    for (const text of ['30,7,1', '1', 'none']) expect(formatDayList((parseDayList(text, 'warning') as { value: number[] }).value, 'warning')).toBe(text);
  });

  test('bad values: each problem named with the key and the text', () => {
    const problem = (key: string, text: string) => (parseProductSetting(key, text) as { problem: string }).problem;
    expect(problem('product:P:warning-days', '')).toBe('product:P:warning-days is empty: give comma-separated whole days such as 30,7,1, or none');
    expect(problem('product:P:warning-days', '7,1,')).toBe('product:P:warning-days "7,1,": entry 3 is empty (e.g. 30,7,1)');
    expect(problem('product:P:warning-days', '7,x')).toBe('product:P:warning-days "7,x": "x" is not a number of days (e.g. 30,7,1)');
    expect(problem('product:P:warning-days', '7,-1,1.5,7')).toBe(
      'product:P:warning-days "7,-1,1.5,7": -1 is negative: warning days count days before the expiry date (0 is the expiry date itself); 1.5 is not a whole number of days; 7 appears more than once',
    );
    expect(problem('product:P:after-expiry-days', '0,1')).toBe(
      'product:P:after-expiry-days "0,1": 0 is the expiry date itself, the day of license.expired: after-expiry days start at 1',
    );
    expect(problem('product:P:after-expiry-days', '4000')).toBe('product:P:after-expiry-days "4000": 4000 is more than 3650 days (ten years)');
    expect(problem('product:P:after-expiry-days', Array.from({ length: 400 }, (_, index) => index + 1).join(','))).toBe(
      'product:P:after-expiry-days "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,1..." has 400 days; at most 365 are accepted (one notice a day for a year)',
    );
    expect(problem('product:P:enabled', 'yes')).toBe('product:P:enabled must be true or false, not "yes"');
    expect(problem('warning-days', '7')).toBe('"warning-days" is not a product setting (product:<product id>:<field>)');
  });

  test('stored rows are laid over the config field by field; bad rows are reported, not used; other keys ignored', () => {
    const config = { PRO: { warningDays: [30, 7, 1], afterExpiryDays: [1] }, OLD: { enabled: false } };
    const stored: Array<[string, string]> = [
      ['warning-days', '7,1'],
      ['product:PRO:after-expiry-days', '1,7'],
      ['product:NEW:enabled', 'false'],
      ['product:OLD:warning-days', 'seven'],
    ];
    const { products, problems: found } = applyProductSettings(config, stored);
    expect(products).toEqual({ PRO: { warningDays: [30, 7, 1], afterExpiryDays: [1, 7] }, OLD: { enabled: false }, NEW: { enabled: false } });
    expect(found).toEqual([{ key: 'product:OLD:warning-days', problem: 'product:OLD:warning-days "seven": "seven" is not a number of days (e.g. 30,7,1)' }]);
    // The config's object is not changed.
    expect(config.PRO.afterExpiryDays).toEqual([1]);
  });
});

describe('warnings', () => {
  test('after-expiry days within lookbackDays: named, with when it happens and the fix', () => {
    const [warning, ...rest] = lookbackOverlapWarnings({ warningDays: [7, 1], afterExpiryDays: [30, 7, 1] }, {}, 7);
    expect(rest).toEqual([]);
    expect(warning).toEqual({
      kind: 'after-expiry-within-lookback',
      where: 'expirations.afterExpiryDays',
      days: [1, 7],
      message:
        'expirations.afterExpiryDays 1,7 are within lookbackDays 7: a license whose expiry is first announced 1 day or more after its expiry date gets license.expired and ' +
        'license.expired_reminder in the same run (when runs were missed since the expiry date, on a first run, for an expiry date set 1 day or more in the past, and every day for ' +
        'expires_at values with a time of day later than the daily run (their expiry is first seen the next day)). To keep them on separate days, use after-expiry days above 7.',
    });
  });

  test('per product: only products with their own enabled list; the fix names the lookback when it can help', () => {
    const products = {
      PRO: { afterExpiryDays: [3, 14] },
      OFF: { afterExpiryDays: [1], enabled: false },
      INHERITS: { warningDays: [1] },
      LATE: { afterExpiryDays: [8] },
    };
    const warnings = lookbackOverlapWarnings({ warningDays: [7, 1], afterExpiryDays: [] }, products, 7);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      productId: 'PRO',
      days: [3],
      where: 'expirations.products.PRO.afterExpiryDays (setting product:PRO:after-expiry-days)',
    });
    expect(warnings[0]!.message).toContain('use after-expiry days above 7, or lookbackDays below 3.');
    expect(warnings[0]!.message).not.toContain('time of day');
    expect(lookbackOverlapWarnings({ warningDays: [], afterExpiryDays: [8, 30] }, {}, 7)).toEqual([]);
  });

  test('the warning is exact: with N <= lookbackDays a run sends both; with every N above it no run ever does', () => {
    const zone = 'Europe/Berlin';
    const sameRun = (afterExpiryDays: number[], expiresAt: Date, hoursAfterMidnight: number) => {
      const policy = { warningDays: [], lookbackDays: 7, timeZone: zone };
      const recorded: RecordedEvent[] = [];
      const days: string[] = [];
      // Daily runs for 20 days from the day before the expiry; what a run records the next one sees.
      for (let day = -1; day < 20; day += 1) {
        const now = new Date(startOfDayInZone(addDays('2025-03-25', day), zone).getTime() + hoursAfterMidnight * 3600_000);
        const expired = decide({ id: 1, status: 'active', expiresAt, updatesUntil: null }, now, policy).events.filter(
          (event) => !new RecordedEvents(recorded).covers(event),
        );
        const reminder = dueReminder({ id: 1, status: 'active', expiresAt, updatesUntil: null }, now, { ...policy, afterExpiryDays });
        const fresh = reminder && !reminderCovered(reminder, recorded);
        if (expired.length > 0 && fresh) days.push(now.toISOString());
        for (const event of expired) recorded.push(event);
        if (reminder && fresh) recorded.push(reminder);
      }
      return days;
    };
    // Expires at 23:00 Berlin on 03-25; the cron runs at 08:00: expired is first seen on 03-26, the day of reminder 1.
    const lateInTheDay = new Date('2025-03-25T22:00:00Z');
    expect(sameRun([1], lateInTheDay, 8)).toEqual(['2025-03-26T07:00:00.000Z']);
    expect(sameRun([8], lateInTheDay, 8)).toEqual([]);
    // A date alone expires at 00:00 and is announced on the day: no overlap in the normal course.
    expect(sameRun([1], startOfDayInZone('2025-03-25', zone), 8)).toEqual([]);
  });

  test('unknown products: a warning per product, with the near miss when only the case differs', () => {
    const warnings = unknownProductWarnings({ 'PROD-001': {}, 'prod-002': {}, GONE: {} }, ['PROD-001', 'PROD-002']);
    expect(warnings.map((warning) => warning.productId)).toEqual(['prod-002', 'GONE']);
    expect(warnings[0]!.message).toBe(
      'no license has product "prod-002" (expirations.products / product:prod-002:… settings), so its schedule applies to none; product ids match exactly: did you mean "PROD-002"?',
    );
    expect(warnings[1]!.message).toContain('check the id if it is not a product still to come');
  });
});
