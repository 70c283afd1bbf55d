// `send-test-event`: one sample event now, what was sent and what came back.
import { Option, type Command } from 'commander';
import type { SendTestEventResult, TestEventContext } from '../../commands/send-test-event.js';
import { runOutcome } from '../../run-outcome.js';
import { plural } from '../../plural.js';
import { NOTICE_TYPES, secretEnvOption, type CommandKit } from '../command-kit.js';
import { examples } from '../help.js';
import { givenSecret } from '../options.js';
import type { Output } from '../output.js';
import { clean } from '../text.js';

export function registerSendTestEvent(program: Command, kit: CommandKit): void {
  const { io, clock, act, withDatabase, readConfig } = kit;
  program
    .command('send-test-event')
    .description('send one sample event now and show what was sent and what came back')
    .option('--url <url>', 'send here instead of the configured webhook URL')
    .option('--secret <secret>', 'sign with this secret instead of the configured one')
    .addOption(secretEnvOption('sign with the secret in this environment variable instead'))
    .addOption(new Option('--event <type>', 'event type').choices(NOTICE_TYPES).default('license.expiring'))
    .option('--license <code>', 'use this license from the database instead of the sample payload')
    .option('--endpoint <name>', 'send to this endpoint, with its URL, secret, headers and signing (see "endpoints list")')
    .addHelpText(
      'after',
      examples(
        'license-manager send-test-event --url https://abc123.ngrok.io/webhook --secret s3cret',
        'license-manager send-test-event --url https://abc123.ngrok.io/webhook --secret-env RECEIVER_SECRET   # not visible in ps',
        'license-manager send-test-event --event license.expired --license LIC-0001',
        'license-manager send-test-event --event license.expired_reminder --license LIC-0001',
      ),
    )
    .action(
      (
        options: { url?: string; secret?: string; secretEnv?: string; event: (typeof NOTICE_TYPES)[number]; license?: string; endpoint?: string },
        command: Command,
      ) => {
        const send = async (context: TestEventContext, out: Output) => {
          const { sendTestEvent } = await import('../../commands/send-test-event.js');
          const result = await sendTestEvent(context, { ...options, secret: givenSecret(options, io.env), clock });
          if (out.options.json) out.json(result);
          else printTestEvent(out, result);
          const abandoned = result.delivery.status === 'delivered' ? 0 : 1;
          if (abandoned && out.options.quiet && !out.options.json) out.warn(`test event not delivered: ${result.delivery.lastError ?? 'unknown error'}`);
          return runOutcome({ abandoned }).exitCode;
        };
        // The sample event to a given --url needs no database: none is created, an existing one is only read (its settings).
        if (options.url === undefined || options.license !== undefined || options.endpoint !== undefined) return withDatabase(command, send);
        return act(command, async (out, flags) => send(await readConfig(out, flags), out));
      },
    );
}

/** One attempt in words: the status (the body is printed once, on its own line), or what kept a response from coming. */
function attemptText(attempt: { statusCode: number | null; durationMs: number; error: string | null }): string {
  if (attempt.statusCode !== null) {
    const redirect = attempt.statusCode >= 300 && attempt.statusCode <= 399 && attempt.error ? ` (${clean(attempt.error)})` : '';
    return `HTTP ${attempt.statusCode} in ${attempt.durationMs} ms${redirect}`;
  }
  const refused = /ECONNREFUSED\s*(\S*)/.exec(attempt.error ?? '');
  if (refused) return `connection refused${refused[1] ? ` by ${refused[1]}` : ''}: nothing is listening there (is the receiver running, on this port?)`;
  return `no response after ${attempt.durationMs} ms${attempt.error ? ` (${clean(attempt.error)})` : ''}`;
}

function printTestEvent(out: Output, result: SendTestEventResult): void {
  out.info(`POST ${result.url}`);
  for (const [name, value] of Object.entries(result.headers)) out.info(`${name}: ${clean(value)}`);
  if (!result.signed) out.info(out.paint.dim('(no secret set: no X-Webhook-Signature header)'));
  out.info('');
  out.info(clean(result.body));
  out.info('');
  for (const attempt of result.delivery.attempts) {
    out.info(`attempt ${attempt.attempt}: ${attemptText(attempt)}`);
    if (attempt.responsePrefix) out.info(`  response: ${clean(attempt.responsePrefix.slice(0, 300).replace(/\s+/g, ' ').trim())}`);
  }
  const verdict = result.delivery.status === 'delivered' ? out.paint.green('delivered') : out.paint.red(result.delivery.status);
  out.info(`${verdict} after ${plural(result.delivery.attempts.length, 'attempt')}`);
}
