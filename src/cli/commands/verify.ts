// `verify`: check a webhook signature, and say why it fails.
import { Option, type Command } from 'commander';
import { EXIT } from '../../errors.js';
import { secretEnvOption, type CommandKit } from '../command-kit.js';
import { examples } from '../help.js';
import { collectSecret, givenSecrets, wholeNumber } from '../options.js';

export function registerVerify(program: Command, kit: CommandKit): void {
  const { io, stop, clock, act, readConfig } = kit;
  program
    .command('verify')
    .description('check a webhook signature, and say why it fails (re-serialised body, sha256= prefix, ...)')
    .option(
      '--secret <secret>',
      'the webhook secret (default: the configured one, as listen uses); repeat it to try several (says which matched)',
      collectSecret,
    )
    .addOption(secretEnvOption('the webhook secret is in this environment variable'))
    .option('--signature <value>', 'the X-Webhook-Signature value the receiver got, or the webhook-signature one (v1,<base64>, with --id and --timestamp)')
    .option('--id <webhook-id>', 'Standard Webhooks: the webhook-id header')
    .option('--timestamp <seconds>', 'Standard Webhooks: the webhook-timestamp header')
    .option('--file <body>', 'the raw body as received, a regular file (default: standard input)')
    .addOption(new Option('--max-body <bytes>', 'refuse bodies larger than this (default 1048576)').argParser(wholeNumber(1, 2 ** 31)))
    .addHelpText(
      'after',
      examples(
        'license-manager verify --secret s3cret --signature 5d41402a... --file body.json',
        'pbpaste | license-manager verify --secret s3cret --signature 5d41402a...',
        'license-manager -c /etc/license-manager/config.json verify --signature 5d41402a... --file body.json   # the configured secret',
      ) +
        '\n\nExit status: 0 the signature verifies, 1 it does not (the reason says why), 2 it cannot be checked (bad usage: no secret, an empty one, a --timestamp that is no Unix seconds).\nWith --json (a global option), one object with valid, verdict, explanation, scheme and secret.\n',
    )
    .action(
      (
        options: { secret?: string[]; secretEnv?: string; signature?: string; id?: string; timestamp?: string; file?: string; maxBody?: number },
        command: Command,
      ) =>
        act(command, async (out, flags) => {
          const { verifyCommand } = await import('../../commands/verify.js');
          const configuredSecret = async () => {
            // The secret listen would use: env, settings (an existing database, read-only), config file.
            return (await readConfig(out, flags)).config.webhooks.secret;
          };
          const secrets = givenSecrets(options, io.env);
          const result = await verifyCommand({ ...options, secrets }, { stdin: () => io.stdin ?? process.stdin, configuredSecret, stop, cwd: io.cwd, clock });
          // One secret and Botble's header: what verify always said; otherwise which scheme and which secret matched.
          const named = (secrets?.length ?? 1) > 1 || result.scheme === 'standard';
          const { scheme, secret, ...plain } = result;
          if (out.options.json) out.json(named ? result : plain);
          else if (result.valid)
            out.info(out.paint.green(named ? `valid (${scheme === 'standard' ? 'Standard Webhooks' : 'X-Webhook-Signature'}, secret ${secret})` : 'valid'));
          else out.io.stderr.write(`${out.errPaint.red('invalid')}: ${result.explanation}\n`);
          // Like grep: 1 means "checked, and it does not match".
          return result.valid ? EXIT.ok : EXIT.failure;
        }),
    );
}
