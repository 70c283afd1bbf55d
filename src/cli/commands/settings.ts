// `settings list|get|set|unset`: the operator settings stored in the database.
import type { Command } from 'commander';
import { commandLine } from '../../command-line.js';
import type { EffectiveSetting } from '../../config/settings.js';
import { TOLERANT, type CommandKit } from '../command-kit.js';
import { printSettingNotes } from '../format.js';
import { examples, SETTINGS_HELP } from '../help.js';
import type { Io, Output } from '../output.js';
import { clean, table } from '../text.js';

export function registerSettings(program: Command, kit: CommandKit): void {
  const { io, stop, clock, withDatabase } = kit;
  const settings = program.command('settings').description('view and change operator settings (stored in the database)').addHelpText('after', SETTINGS_HELP);
  settings
    .command('list')
    .description("each setting's effective value and where it came from")
    .addHelpText('after', examples('license-manager settings list', 'license-manager settings list --json'))
    .action((_options: unknown, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const { settingsList, unknownProducts } = await import('../../commands/settings.js');
          const list = settingsList(context);
          for (const warning of await unknownProducts(context)) out.warn(warning);
          if (out.options.json) out.json(list.map(typedSetting));
          else printSettings(out, list);
        },
        TOLERANT,
      ),
    );
  settings
    .command('get <key>')
    .description("print one setting's effective value")
    .option('--reveal', 'print the webhook secret itself instead of ******** (to copy it into your receiver)')
    .addHelpText(
      'after',
      examples('license-manager settings get webhook-url', 'license-manager settings get warning-days', 'license-manager settings get webhook-secret --reveal'),
    )
    .action((key: string, options: { reveal?: boolean }, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const { settingsGet } = await import('../../commands/settings.js');
          const setting = settingsGet(context, key, options);
          if (out.options.json) out.json(typedSetting(setting));
          else out.result(setting.value ?? '');
          if (setting.invalid)
            out.warn(
              `the stored ${setting.key} is invalid and not used (${setting.invalid}); fix it with "${commandLine(`settings set ${setting.key} <value>`)}".`,
            );
        },
        TOLERANT,
      ),
    );
  settings
    .command('set <key> <value>')
    .description('validate and store a setting; a value of - is read from standard input (keeps the secret out of ps and the shell history)')
    .addHelpText(
      'after',
      examples(
        'license-manager settings set webhook-url https://example.com/webhooks/licenses',
        'license-manager settings set warning-days 14,7,1',
        'license-manager settings set after-expiry-days 3,14           # license.expired_reminder 3 and 14 days after the expiry date',
        'license-manager settings set product:PROD-001:warning-days 30,7,1',
        'license-manager settings set product:FREE-TIER:enabled false  # no notices for this product',
        'openssl rand -hex 32 | license-manager settings set webhook-secret -',
      ),
    )
    .action((key: string, value: string, _options: unknown, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const { settingsSet } = await import('../../commands/settings.js');
          const given = value === '-' ? await valueFromStdin(io, key, stop) : value;
          const change = await settingsSet(context, key, given, clock.now());
          if (out.options.json) out.json(change);
          else out.info(`${change.key} = ${change.stored}`);
          if (change.shadowedBy) out.warn(`${change.shadowedBy} is set and overrides the stored ${change.key} until it is unset.`);
          for (const warning of change.warnings ?? []) out.warn(warning);
        },
        TOLERANT,
      ),
    );
  settings
    .command('unset <key>')
    .description('remove a stored setting (the config file or default applies again)')
    .addHelpText('after', examples('license-manager settings unset webhook-url'))
    .action((key: string, _options: unknown, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const { settingsUnset } = await import('../../commands/settings.js');
          const change = await settingsUnset(context, key);
          if (out.options.json) out.json(change);
          else out.info(change.removed ? `${change.key} unset` : `${change.key} was not set in the database; nothing changed`);
        },
        TOLERANT,
      ),
    );
}

function printSettings(out: Output, settings: EffectiveSetting[]): void {
  out.info(
    table([
      ['KEY', 'VALUE', 'SOURCE'],
      ...settings.map((setting) => [
        setting.key,
        setting.value === null ? out.paint.dim('(not set)') : clean(setting.value),
        [
          setting.origin ? `${setting.source} (${setting.origin})` : setting.source,
          setting.invalid ? out.paint.red(`INVALID, not used: ${setting.invalid}`) : '',
          setting.overrides ? out.paint.yellow(`overrides ${setting.overrides}`) : '',
        ]
          .filter(Boolean)
          .join('; '),
      ]),
    ]),
  );
  for (const setting of settings.filter((candidate) => candidate.invalid)) {
    out.info(`Fix ${setting.key} with "${commandLine(`settings set ${setting.key} <value>`)}" or "${commandLine(`settings unset ${setting.key}`)}".`);
  }
  printSettingNotes(out, settings);
}

/** A setting for --json with its value as a JSON type: true, [7, 1], not "true", "7,1". */
function typedSetting(setting: EffectiveSetting): Omit<EffectiveSetting, 'value'> & { value: unknown } {
  if (setting.value === null || setting.invalid) return setting;
  if (setting.key === 'webhooks-enabled') return { ...setting, value: setting.value === 'true' };
  if (setting.key === 'warning-days' || setting.key.endsWith('days'))
    return { ...setting, value: setting.value === 'none' ? [] : setting.value.split(',').map(Number) };
  if (setting.key.startsWith('product:') && setting.key.endsWith(':enabled')) return { ...setting, value: setting.value === 'true' };
  return setting;
}

/** `settings set <key> -`: the value from standard input, one trailing line break dropped (echo, a here-string). */
async function valueFromStdin(io: Io, key: string, stop: AbortSignal): Promise<string> {
  const { readCapped } = await import('../../read-input.js');
  const stdin = io.stdin ?? process.stdin;
  if ((stdin as { isTTY?: boolean }).isTTY) io.stderr.write(`Type the value of ${key}, then Enter and Ctrl-D:\n`);
  const bytes = await readCapped(stdin, { maxBytes: 64 * 1024, what: `the value of ${key} on standard input`, tooLarge: 'a setting is one short line.', stop });
  return bytes.toString('utf8').replace(/\r?\n$/, '');
}
