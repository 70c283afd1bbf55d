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
  product:<id>:warning-days | product:<id>:after-expiry-days | product:<id>:enabled
                     one product's own schedule (Botble mode: the product's reference id); unset
                     fields take the global value; enabled false sends no notices for that product

Precedence, highest first: environment variable, settings table, config file, default.
${examples(
  'license-manager settings set webhook-url https://example.com/webhooks/licenses',
  'license-manager settings set webhook-secret "$(openssl rand -hex 32)"',
  'license-manager settings set webhooks-enabled true',
  'license-manager settings list',
)}`;
