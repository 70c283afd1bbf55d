/** The "Examples:" block under each command's --help: one style for every command and subcommand. */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}`;
}

export const SETTINGS_HELP = `
Settings:
  webhooks-enabled   true / false
  webhook-url        absolute http: or https: URL
  webhook-secret     HMAC-SHA256 key (shown masked; settings get webhook-secret --reveal prints it)
  warning-days       comma-separated whole days, e.g. 7,1; none turns license.expiring off
  time-zone          IANA zone whose calendar days count, e.g. Europe/Berlin (default UTC)
  after-expiry-days  comma-separated whole days after the expiry date to send license.expired_reminder,
                     e.g. 1,7; none (the default) sends none
  ping               heartbeat pinged when a run starts and ends: <url> (Healthchecks), cronitor <url>
                     or sentry <url>; none turns off the config file's monitoring.ping (shown masked)
  product:<id>:warning-days | product:<id>:after-expiry-days | product:<id>:enabled
                     one product's own schedule (Botble mode: the product's reference id); unset
                     fields take the global value; enabled false sends no notices for that product

Precedence, highest first: environment variable, settings table, config file, default.
${examples(
  'license-manager settings set webhook-url https://example.com/webhooks/licenses',
  'openssl rand -hex 32 | license-manager settings set webhook-secret -   # from standard input: out of ps and the shell history',
  'license-manager settings set webhooks-enabled true',
  'license-manager settings list',
)}`;

/** `licenses import --help`: the columns, as the README's "Importing licenses" section has them. */
export const IMPORT_HELP = `
Columns (CSV header names, JSON keys; lower case, exactly as written here):
  license_code      required; the key rows are upserted by
  email, customer_id, product_id, product_name
                    optional text
  status            active, suspended, revoked or expired (new licenses without it: active; an empty
                    cell is an error)
  expires_at        YYYY-MM-DD (a day in the business time zone) or an ISO date-time; empty: lifetime
  updates_until     the same; empty: no update-support end
  is_valid          Botble's flag: false/0 makes the license suspended; true/1 without a status column
                    lifts a suspension
  id                Botble's license id, a positive whole number (kept as the license id; an import never
                    changes one: an id not the stored license's own is an error)
  support_until     Botble's column: checked to be a date, not stored
  created_at, updated_at
                    accepted and ignored

A column that is missing leaves the stored value as it is; an empty cell (or null in JSON) clears it.
Any other column is an error naming the known ones. A relative <file> is relative to the current folder.
`;
