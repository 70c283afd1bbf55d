// `listen`: a local receiver that prints each webhook and whether its signature verifies.
import { Option, type Command } from 'commander';
import type { ReceivedWebhook } from '../../commands/listen.js';
import { usageError } from '../../errors.js';
import { secretLabel, secretProblem } from '../../webhooks/target.js';
import { secretEnvOption, type CommandKit } from '../command-kit.js';
import { examples } from '../help.js';
import { collectSecret, givenSecrets, listenHost, wholeNumber } from '../options.js';
import type { Output } from '../output.js';
import { clean } from '../text.js';

export function registerListen(program: Command, kit: CommandKit): void {
  const { io, stop, clock, act, readConfig } = kit;
  program
    .command('listen')
    .description('a local receiver that prints each webhook and whether its signature verifies (pair with ngrok or send-test-event --url)')
    .addOption(new Option('--port <port>', 'port to listen on (0 picks a free one)').argParser(wholeNumber(0, 65535)).default(8000))
    .addOption(new Option('--host <host>', 'address to listen on').argParser(listenHost).default('127.0.0.1'))
    .option(
      '--secret <secret>',
      'check signatures with this secret (default: the configured one); repeat it to accept several (a rotation: new and old)',
      collectSecret,
    )
    .addOption(secretEnvOption('check signatures with the secret in this environment variable'))
    .addOption(
      new Option('--respond <status>', 'answer every request with this HTTP status, e.g. 500 to rehearse retries (with a secret, a bad signature gets 401)')
        .argParser(wholeNumber(200, 599))
        .default(200),
    )
    .addOption(new Option('--max-body <bytes>', 'answer 413 to bodies larger than this (default 1048576)').argParser(wholeNumber(1, 2 ** 31)))
    .addOption(
      new Option('--max-connections <n>', 'open connections at most; at the limit the oldest is closed for each new one (default 100)').argParser(
        wholeNumber(1, 10_000),
      ),
    )
    .addHelpText(
      'after',
      `${examples(
        'license-manager listen --secret s3cret                  # then, in another terminal:',
        'license-manager send-test-event --url http://127.0.0.1:8000/webhook --secret s3cret',
        'RECEIVER_SECRET=s3cret license-manager listen --secret-env RECEIVER_SECRET   # not visible in ps',
        'ngrok http 8000                                         # to receive from another machine',
        'license-manager listen --respond 503                    # rehearse retries',
        'license-manager listen --port 0 --json                  # first line: {"listening":"http://127.0.0.1:<port>/",...}',
      )}\nWith --json (a global option), the address as the first line, then one JSON line per request.\nA development tool, not a production receiver: a client that takes over 10 s to send its headers or 30 s for the\nwhole request is cut off, and at most --max-connections are open at once.\n`,
    )
    .action(
      (
        options: { port: number; host: string; secret?: string[]; secretEnv?: string; respond: number; maxBody?: number; maxConnections?: number },
        command: Command,
      ) =>
        act(command, async (out, flags) => {
          // The config, and an existing database read-only: a receiver creates no files.
          const context = await readConfig(out, flags);
          const { listen } = await import('../../commands/listen.js');
          const given = givenSecrets(options, io.env);
          // An empty or blank secret given here would start a receiver that checks nothing, or 401s everything.
          for (const [index, value] of (given ?? []).entries()) {
            const problem = secretProblem(value);
            if (problem) throw usageError(`${secretLabel(index, given!.length, options.secretEnv)} ${problem}.`);
          }
          const [secret = null, ...moreSecrets] = given ?? (context.config.webhooks.secret === null ? [] : [context.config.webhooks.secret]);
          const listener = await listen({ ...options, clock, secret, moreSecrets, onNotice: (text) => out.warn(text) }, (request) =>
            printReceivedWebhook(out, request),
          ).catch((error: unknown) => {
            throw unusableHost(options.host, error);
          });
          // A script learns the address (with --port 0, the port) from the first line, before any request.
          if (out.options.json) io.stdout.write(`${JSON.stringify({ listening: listener.url, signaturesChecked: Boolean(secret) })}\n`);
          else out.result(`listening on ${listener.url} (Ctrl-C to stop)${secret ? '' : ' - no secret set, signatures are not checked'}`);
          // Ctrl-C is how `listen` is meant to end: exit 0, no warning.
          await new Promise<void>((resolve) => (stop.aborted ? resolve() : stop.addEventListener('abort', () => resolve(), { once: true })));
          await listener.close();
        }),
    );
}

/** One request that `listen` received: a JSON line under --json, else the request, headers, body and verdict. */
function printReceivedWebhook(out: Output, request: ReceivedWebhook): void {
  const { stdout } = out.io;
  if (out.options.json) {
    const line = {
      event: request.headers['x-webhook-event'] ?? null,
      id: webhookId(request) ?? null,
      headers: request.headers,
      body: request.body.toString('utf8'),
      signature: request.verification?.verdict ?? 'not checked',
      ...(request.verification?.valid && (request.secrets !== undefined || request.verification.scheme === 'standard')
        ? { scheme: request.verification.scheme, secret: request.verification.secret }
        : {}),
      status: request.status,
    };
    stdout.write(`${JSON.stringify(line)}\n`);
    return;
  }
  const event = clean(String(request.headers['x-webhook-event'] ?? '(no X-Webhook-Event)'));
  const verdict = request.refused
    ? out.paint.red(`refused: ${request.refused}`)
    : !request.verification
      ? out.paint.yellow('signature not checked (no secret: pass --secret)')
      : request.verification.valid
        ? out.paint.green(
            request.secrets !== undefined || request.verification.scheme === 'standard'
              ? `signature valid (${request.verification.scheme === 'standard' ? 'Standard Webhooks' : 'X-Webhook-Signature'}, secret ${request.verification.secret})`
              : 'signature valid',
          )
        : out.paint.red(`signature INVALID: ${request.verification.explanation}`);
  const test = request.headers['x-webhook-test'] === 'true' ? '  (test event)' : '';
  stdout.write(
    `\n${out.paint.bold(clean(`${request.method} ${request.url}`))}  ${event}${test}  id ${clean(String(webhookId(request) ?? '-'))}  answered ${request.status}\n`,
  );
  for (const [name, value] of Object.entries(request.headers)) stdout.write(`  ${name}: ${clean(String(value))}\n`);
  let pretty = request.body.toString('utf8');
  try {
    pretty = JSON.stringify(JSON.parse(pretty), null, 2);
  } catch {
    // not JSON: show it as it came
  }
  stdout.write(`${clean(pretty, true)}\n${verdict}\n`);
}

/** The event's id: X-Webhook-Id, else Standard Webhooks' webhook-id (the same value; a request signed only the standard way has just the second). */
function webhookId(request: ReceivedWebhook): string | string[] | undefined {
  return request.headers['x-webhook-id'] ?? request.headers['webhook-id'];
}

/** A --host that names no address of this machine is bad usage (exit 2), not an unexpected failure. */
function unusableHost(host: string, error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return usageError(`--host ${host}: no such host name. Use 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of this machine's addresses.`, {
      cause: error,
    });
  if (code === 'EADDRNOTAVAIL')
    return usageError(
      `--host ${host} is not an address of this machine. Use 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or one of its own addresses.`,
      { cause: error },
    );
  return error;
}
