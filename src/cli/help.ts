/** The "Examples:" block under each command's --help: one style for every command and subcommand. */
export function examples(...lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}`;
}

export const SETTINGS_HELP = `
Settings:
  webhooks-enabled   true / false
  webhook-url        absolute http: or https: URL
  webhook-secret     HMAC-SHA256 key (always shown masked)
  warning-days       comma-separated whole days, e.g. 7,1; none turns license.expiring off
  time-zone          IANA zone whose calendar days count, e.g. Europe/Berlin (default UTC)

Precedence, highest first: environment variable, settings table, config file, default.
${examples(
  'license-manager settings set webhook-url https://example.com/webhooks/licenses',
  'license-manager settings set webhook-secret "$(openssl rand -hex 32)"',
  'license-manager settings set webhooks-enabled true',
  'license-manager settings list',
)}`;
