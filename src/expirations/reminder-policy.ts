// Reminder schedules per product (expirations.products, expirations.afterExpiryDays and their settings): schema, text form, checks, lookup; pure.
import { z } from 'zod';

/**
 * The contract's "Reminder policy": each product may have its own `warningDays`, `afterExpiryDays` and
 * `enabled`; a product not named, or a field a product leaves out, takes the global value.
 */

/** Which day list: days before the expiry date (`license.expiring`) or after it (`license.expired_reminder`). */
export type DayListKind = 'warning' | 'after-expiry';

// A list longer than a year of daily notices is a mistake (a pasted range, a generated list gone wrong), not a schedule.
const MAX_DAY_LIST_LENGTH = 365;
// Ten years, the same ceiling the global warningDays has: beyond it a day is a typo (30000 for 30).
const MAX_WARNING_DAY = 3650;
const MAX_AFTER_EXPIRY_DAY = 3650;
// Botble's lm_products.reference_id is varchar(50); 64 keeps `product:<id>:after-expiry-days` inside the 100-character settings key.
const MAX_PRODUCT_ID_LENGTH = 64;

/** One thing wrong with a day list; `index` is the entry's position when one entry is at fault. */
interface DayListProblem {
  index?: number;
  message: string;
}

/** Everything wrong with a list of days, each problem naming the value and why (empty when the list is fine). */
export function dayListProblems(days: readonly number[], kind: DayListKind): DayListProblem[] {
  if (days.length > MAX_DAY_LIST_LENGTH) {
    return [{ message: `has ${days.length} days; at most ${MAX_DAY_LIST_LENGTH} are accepted (one notice a day for a year)` }];
  }
  const problems: DayListProblem[] = [];
  const ceiling = kind === 'warning' ? MAX_WARNING_DAY : MAX_AFTER_EXPIRY_DAY;
  const seen = new Set<number>();
  days.forEach((day, index) => {
    if (!Number.isInteger(day)) {
      problems.push({ index, message: `${day} is not a whole number of days` });
    } else if (day < 0) {
      problems.push({
        index,
        message:
          kind === 'warning'
            ? `${day} is negative: warning days count days before the expiry date (0 is the expiry date itself)`
            : `${day} is negative: after-expiry days count days after the expiry date, from 1`,
      });
    } else if (kind === 'after-expiry' && day === 0) {
      problems.push({ index, message: '0 is the expiry date itself, the day of license.expired: after-expiry days start at 1' });
    } else if (day > ceiling) {
      problems.push({ index, message: `${day} is more than ${ceiling} days (ten years)` });
    } else if (seen.has(day)) {
      problems.push({ index, message: `${day} appears more than once` });
    }
    seen.add(day);
  });
  return problems;
}

function dayListSchema(kind: DayListKind) {
  const example = kind === 'warning' ? '[30, 7, 1]' : '[1, 7]';
  return z
    .array(z.number({ error: (issue) => `expected a whole number of days, not ${JSON.stringify(issue.input) ?? String(issue.input)}` }), {
      error: `expected a list of whole days, e.g. ${example}; [] for none`,
    })
    .superRefine((days, ctx) => {
      for (const problem of dayListProblems(days, kind)) {
        ctx.addIssue({ code: 'custom', message: problem.message, ...(problem.index === undefined ? {} : { path: [problem.index] }) });
      }
    });
}

/** Days before the expiry date for `license.expiring` ([] turns it off); the per-product form of expirations.warningDays. */
const warningDayListSchema = dayListSchema('warning');
/** Days after the expiry date for `license.expired_reminder`, from 1 ([] turns it off). */
const afterExpiryDayListSchema = dayListSchema('after-expiry');

/** Why a product id cannot name a product schedule, or undefined when it can. */
export function productIdProblem(id: string): string | undefined {
  if (id === '') return 'a product id must not be empty';
  if (id.length > MAX_PRODUCT_ID_LENGTH)
    return `the product id "${id.slice(0, 40)}..." is ${id.length} characters long; at most ${MAX_PRODUCT_ID_LENGTH} are accepted`;
  if (id.trim() !== id) return `the product id "${id}" starts or ends with a space: product ids are matched exactly`;
  // C0/C1 controls: an id that rewrites the terminal when printed, or holds a pasted line break.
  for (const char of id) {
    const code = char.charCodeAt(0);
    if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) return `the product id ${JSON.stringify(id)} contains a control character`;
  }
  return undefined;
}

/** One product's schedule: whatever it leaves out comes from the global values. */
const productScheduleSchema = z.strictObject(
  {
    warningDays: warningDayListSchema.optional().describe('days before expiry to send license.expiring for this product; [] turns it off'),
    afterExpiryDays: afterExpiryDayListSchema
      .optional()
      .describe('days after the expiry date to send license.expired_reminder for this product; [] turns it off'),
    enabled: z
      .boolean({ error: 'must be true or false' })
      .optional()
      .describe('false: no notices of any kind for this product (its licenses still change status)'),
  },
  {
    error: (issue) => {
      if (issue.code === 'invalid_type') return 'expected a product schedule such as { "warningDays": [30, 7, 1], "afterExpiryDays": [1], "enabled": true }';
      if (issue.code === 'unrecognized_keys')
        return `unknown ${issue.keys.length === 1 ? 'key' : 'keys'} ${issue.keys.map((key) => `"${key}"`).join(', ')}: a product schedule has warningDays, afterExpiryDays and enabled`;
      return undefined;
    },
  },
);

export type ProductSchedule = z.output<typeof productScheduleSchema>;
/** Schedules by product id (Botble mode: the product's reference id). */
export type ProductSchedules = Readonly<Record<string, ProductSchedule>>;

const productIdSchema = z.string().superRefine((id, ctx) => {
  const problem = productIdProblem(id);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** expirations.products, keyed by product id. */
const productSchedulesSchema = z
  .unknown()
  .superRefine((value, ctx) => {
    // JSON.parse keeps a "__proto__" key, which a record drops without a word: say so instead.
    if (typeof value === 'object' && value !== null && Object.hasOwn(value, '__proto__')) {
      ctx.addIssue({ code: 'custom', path: ['__proto__'], message: '"__proto__" cannot be a product id' });
    }
  })
  .pipe(
    z.record(productIdSchema, productScheduleSchema, {
      // A bad key's own reason, not zod's "Invalid key in record".
      error: (issue) =>
        issue.code === 'invalid_key'
          ? issue.issues[0]?.message
          : issue.code === 'invalid_type'
            ? 'expected an object keyed by product id, e.g. { "PROD-001": { "warningDays": [30, 7, 1] } }'
            : undefined,
    }),
  );

/** The keys to add to the config's `expirations` object (the defaults leave today's behaviour unchanged). */
export const reminderPolicyConfigShape = {
  afterExpiryDays: afterExpiryDayListSchema
    .default([])
    .describe('days after the expiry date to send license.expired_reminder, e.g. [1, 7]; [] (the default) sends none'),
  products: productSchedulesSchema
    .default({})
    .describe('per product id (Botble: the reference id) its own warningDays, afterExpiryDays and enabled; products not named use the global values'),
};

/** The global values every product falls back to. */
export interface GlobalSchedule {
  warningDays: readonly number[];
  afterExpiryDays: readonly number[];
}

/** The schedule a license's notices follow. */
export interface ReminderSchedule extends GlobalSchedule {
  /** False: no notices of any kind for this product. */
  enabled: boolean;
}

/** The schedule of a product: its own fields, the global values for the rest; a license without a product takes the global values. */
export function policyFor(productId: string | null, global: GlobalSchedule, products: ProductSchedules): ReminderSchedule {
  // hasOwn: a product called "constructor" or "toString" is a product, not Object.prototype's method.
  const own = productId !== null && Object.hasOwn(products, productId) ? products[productId] : undefined;
  return {
    warningDays: own?.warningDays ?? global.warningDays,
    afterExpiryDays: own?.afterExpiryDays ?? global.afterExpiryDays,
    enabled: own?.enabled ?? true,
  };
}

/*
 * The text form for `settings set|get|unset`. One row per product and field, and each value is written the
 * way the global key is, so an operator types and reads back what `warning-days` already taught them:
 *
 *   after-expiry-days                 1,7 | none       expirations.afterExpiryDays
 *   product:<id>:warning-days         30,7,1 | none    expirations.products.<id>.warningDays
 *   product:<id>:after-expiry-days    1,7 | none       expirations.products.<id>.afterExpiryDays
 *   product:<id>:enabled              true | false     expirations.products.<id>.enabled
 *
 * e.g. `settings set product:PROD-001:warning-days 30,7,1`. One row per field (not one value holding a whole
 * schedule) so `settings unset product:PROD-001:warning-days` hands that one field back to the global value
 * and `settings list` shows which layer set each. The id is everything between `product:` and the last `:`,
 * so ids that contain `:` still work. Lists read back in the order the notices go out: warning days largest
 * first (30,7,1), after-expiry days smallest first (1,7).
 */

export const AFTER_EXPIRY_DAYS_SETTING = 'after-expiry-days';
const PRODUCT_PREFIX = 'product:';

/** The setting field and the schedule field it sets. */
const PRODUCT_FIELDS = { 'warning-days': 'warningDays', 'after-expiry-days': 'afterExpiryDays', enabled: 'enabled' } as const;
type ProductSettingField = keyof typeof PRODUCT_FIELDS;
const FIELD_NAMES = Object.keys(PRODUCT_FIELDS) as ProductSettingField[];

export function productSettingKey(productId: string, field: ProductSettingField): string {
  return `${PRODUCT_PREFIX}${productId}:${field}`;
}

/** Reads a `product:<id>:<field>` key; undefined when the key is not a product key at all. */
export function readProductSettingKey(key: string): { productId: string; field: ProductSettingField } | { problem: string } | undefined {
  if (!key.startsWith(PRODUCT_PREFIX)) return undefined;
  const rest = key.slice(PRODUCT_PREFIX.length);
  const colon = rest.lastIndexOf(':');
  const usage = `write it as product:<product id>:<field> with the field one of ${FIELD_NAMES.join(', ')} (e.g. product:PROD-001:warning-days)`;
  if (colon < 0) return { problem: `"${key}" names no field: ${usage}` };
  const productId = rest.slice(0, colon);
  const field = rest.slice(colon + 1);
  if (!(FIELD_NAMES as string[]).includes(field)) return { problem: `"${field}" in "${key}" is not a product setting: ${usage}` };
  const idProblem = productIdProblem(productId);
  if (idProblem) return { problem: `${idProblem} (in "${key}")` };
  return { productId, field: field as ProductSettingField };
}

/** `30,7,1` or `none` as a day list, or what is wrong with it. */
export function parseDayList(text: string, kind: DayListKind): { value: number[] } | { problem: string } {
  const trimmed = text.trim();
  const example = kind === 'warning' ? '30,7,1' : '1,7';
  if (trimmed.toLowerCase() === 'none') return { value: [] };
  if (trimmed === '') return { problem: `is empty: give comma-separated whole days such as ${example}, or none` };
  const parts = trimmed.split(',');
  // Counted before reading: a pasted million-entry list gets one line back, not a million.
  if (parts.length > MAX_DAY_LIST_LENGTH)
    return { problem: `"${trimmed.slice(0, 40)}..." has ${parts.length} days; at most ${MAX_DAY_LIST_LENGTH} are accepted (one notice a day for a year)` };
  const days: number[] = [];
  for (const [index, raw] of parts.entries()) {
    const part = raw.trim();
    if (part === '') return { problem: `"${trimmed}": entry ${index + 1} is empty (e.g. ${example})` };
    if (!/^[+-]?\d+(\.\d+)?$/.test(part)) return { problem: `"${trimmed}": "${part}" is not a number of days (e.g. ${example})` };
    days.push(Number(part));
  }
  const problems = dayListProblems(days, kind);
  if (problems.length > 0) return { problem: `"${trimmed}": ${problems.map((problem) => problem.message).join('; ')}` };
  return { value: days.sort((a, b) => (kind === 'warning' ? b - a : a - b)) };
}

/** The text `settings get` shows: `none`, or the days in the order the notices go out. */
export function formatDayList(days: readonly number[], kind: DayListKind): string {
  if (days.length === 0) return 'none';
  return [...days].sort((a, b) => (kind === 'warning' ? b - a : a - b)).join(',');
}

type ProductSettingValue = { field: 'warningDays' | 'afterExpiryDays'; value: number[] } | { field: 'enabled'; value: boolean };

/** A `product:<id>:<field>` setting read: which product, which schedule field and value, and the value as it reads back. */
export function parseProductSetting(key: string, text: string): ({ productId: string; text: string } & ProductSettingValue) | { problem: string } {
  const read = readProductSettingKey(key);
  if (read === undefined) return { problem: `"${key}" is not a product setting (product:<product id>:<field>)` };
  if ('problem' in read) return read;
  const { productId, field } = read;
  if (field === 'enabled') {
    const value = text.trim().toLowerCase();
    if (value !== 'true' && value !== 'false') return { problem: `${key} must be true or false, not "${text}"` };
    return { productId, field: 'enabled', value: value === 'true', text: value };
  }
  const kind: DayListKind = field === 'warning-days' ? 'warning' : 'after-expiry';
  const parsed = parseDayList(text, kind);
  if ('problem' in parsed) return { problem: `${key} ${parsed.problem}` };
  return { productId, field: PRODUCT_FIELDS[field], value: parsed.value, text: formatDayList(parsed.value, kind) };
}

/**
 * The config's product schedules with the stored `product:…` settings laid over them, field by field (the
 * settings table ranks above the config file). Other keys are ignored; a bad row is reported, not used.
 */
export function applyProductSettings(
  products: ProductSchedules,
  stored: Iterable<readonly [string, string]>,
): { products: Record<string, ProductSchedule>; problems: Array<{ key: string; problem: string }> } {
  const merged = new Map<string, ProductSchedule>(Object.entries(products).map(([id, schedule]) => [id, { ...schedule }]));
  const problems: Array<{ key: string; problem: string }> = [];
  for (const [key, text] of stored) {
    if (!key.startsWith(PRODUCT_PREFIX)) continue;
    const parsed = parseProductSetting(key, text);
    if ('problem' in parsed) {
      problems.push({ key, problem: parsed.problem });
      continue;
    }
    const schedule = merged.get(parsed.productId) ?? {};
    merged.set(parsed.productId, { ...schedule, [parsed.field]: parsed.value });
  }
  return { products: Object.fromEntries(merged), problems };
}

/** Something an operator should know about a schedule that is still valid: printed, never a refusal. */
export interface ReminderPolicyWarning {
  kind: 'after-expiry-within-lookback' | 'unknown-product';
  /** The config key the warning is about. */
  where: string;
  productId?: string;
  /** For `after-expiry-within-lookback`: the after-expiry days at most lookbackDays. */
  days?: number[];
  message: string;
}

/**
 * After-expiry days that can put `license.expired` and `license.expired_reminder` into the same run.
 *
 * `license.expired` for expiry date D goes out on the first run on a day T with D <= T <= D + lookbackDays
 * that finds it unrecorded; the reminder N goes out on a day T with D + N <= T (see after-expiry.ts). Both
 * fall in one run exactly when that first run comes N or more days after D, which needs N <= lookbackDays:
 * when every N is above lookbackDays the expiry is announced by day D + lookbackDays or never, before any
 * reminder is due. With some N <= lookbackDays it happens when runs were missed from D to D + N - 1, on a
 * first run, when an expiry date is set N or more days in the past, and, for N = 1, every day in the normal
 * course: an `expires_at` with a time of day later than the daily run is first seen expired by the next
 * morning's run, which is D + 1. A warning, not an error: a receiver may well want both.
 */
export function lookbackOverlapWarnings(global: GlobalSchedule, products: ProductSchedules, lookbackDays: number): ReminderPolicyWarning[] {
  const warnings: ReminderPolicyWarning[] = [];
  const check = (days: readonly number[], where: string, productId?: string) => {
    const overlapping = [...days].filter((day) => day >= 1 && day <= lookbackDays).sort((a, b) => a - b);
    if (overlapping.length === 0) return;
    const smallest = overlapping[0]!;
    const cases = [
      `runs were missed since the expiry date`,
      `on a first run`,
      `for an expiry date set ${smallest === 1 ? '1 day' : `${smallest} days`} or more in the past`,
      ...(smallest === 1 ? ['and every day for expires_at values with a time of day later than the daily run (their expiry is first seen the next day)'] : []),
    ];
    const fix =
      smallest === 1 ? `use after-expiry days above ${lookbackDays}` : `use after-expiry days above ${lookbackDays}, or lookbackDays below ${smallest}`;
    warnings.push({
      kind: 'after-expiry-within-lookback',
      where,
      ...(productId === undefined ? {} : { productId }),
      days: overlapping,
      message:
        `${where} ${overlapping.join(',')} ${overlapping.length === 1 ? 'is' : 'are'} within lookbackDays ${lookbackDays}: a license whose expiry is first announced ` +
        `${smallest === 1 ? '1 day' : `${smallest} days`} or more after its expiry date gets license.expired and license.expired_reminder in the same run ` +
        `(when ${cases.join(', ')}). To keep them on separate days, ${fix}.`,
    });
  };
  check(global.afterExpiryDays, 'expirations.afterExpiryDays');
  for (const [productId, schedule] of Object.entries(products)) {
    // A product that inherits the global list is covered by the global warning; a disabled one sends nothing.
    if (schedule.afterExpiryDays === undefined || schedule.enabled === false) continue;
    check(
      schedule.afterExpiryDays,
      `expirations.products.${productId}.afterExpiryDays (setting ${productSettingKey(productId, 'after-expiry-days')})`,
      productId,
    );
  }
  return warnings;
}

/** Product schedules naming a product no license has: a warning (products come and go), with the near miss when the case differs. */
export function unknownProductWarnings(products: ProductSchedules, knownProductIds: Iterable<string>): ReminderPolicyWarning[] {
  const known = new Set(knownProductIds);
  const byLowerCase = new Map<string, string>();
  for (const id of known) byLowerCase.set(id.toLowerCase(), id);
  const warnings: ReminderPolicyWarning[] = [];
  for (const productId of Object.keys(products)) {
    if (known.has(productId)) continue;
    const near = byLowerCase.get(productId.toLowerCase());
    warnings.push({
      kind: 'unknown-product',
      where: `expirations.products.${productId}`,
      productId,
      message:
        `no license has product "${productId}" (expirations.products / ${PRODUCT_PREFIX}${productId}:… settings), so its schedule applies to none` +
        (near === undefined ? '; check the id if it is not a product still to come' : `; product ids match exactly: did you mean "${near}"?`),
    });
  }
  return warnings;
}
