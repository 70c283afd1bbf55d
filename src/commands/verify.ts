import fs from 'node:fs';
import path from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import { usageError } from '../errors.js';
import { notRegularFile } from '../file-kind.js';
import { readCapped } from '../read-input.js';
import { DEFAULT_MAX_BODY_BYTES, verifyRequest, type RequestVerifyResult } from '../webhooks/verify.js';
import { commandLine } from '../command-line.js';
import { standardSecretProblem } from '../webhooks/standard-secret.js';
import { secretLabel, secretProblem } from '../webhooks/target.js';

export interface VerifyOptions {
  /** Given with --secret (repeatable) or --secret-env; otherwise `configuredSecret` is asked. Each is tried; the result names the one that matched. */
  secrets?: readonly string[] | undefined;
  /** The --secret-env variable (never given with --secret), named when its secret is refused. */
  secretEnv?: string;
  /** X-Webhook-Signature's hex value, or webhook-signature's `v1,<base64>` list (then --id and --timestamp are needed). */
  signature?: string;
  /** Standard Webhooks: the webhook-id and webhook-timestamp headers the receiver got. */
  id?: string;
  timestamp?: string;
  file?: string;
  /** Bodies larger than this are refused unread past it; default DEFAULT_MAX_BODY_BYTES, as `listen`. */
  maxBody?: number;
}

export interface VerifyInput {
  stdin: () => NodeJS.ReadableStream;
  /** The secret `listen` would use (env, settings, config file), read only when none is given. */
  configuredSecret: () => Promise<string | null>;
  stop?: AbortSignal;
  /** A relative --file is relative to this directory (main() takes it as a parameter). */
  cwd: string;
  /** Judges a Standard Webhooks timestamp; the system clock when not given. */
  clock?: Clock;
}

/** `verify`: reads the body from --file or from standard input, never more than --max-body, and stops on a signal. */
export async function verifyCommand(options: VerifyOptions, input: VerifyInput): Promise<RequestVerifyResult> {
  if (options.signature === undefined) throw usageError('verify needs --signature <hex> (the X-Webhook-Signature header the receiver got).');
  const standard = options.signature.includes('v1,');
  if (standard && (options.id === undefined || options.timestamp === undefined)) {
    throw usageError(
      'A Standard Webhooks signature (v1,...) is checked with the webhook-id and webhook-timestamp headers the receiver got: add --id <webhook-id> --timestamp <seconds>.',
    );
  }
  if (!standard && (options.id !== undefined || options.timestamp !== undefined)) {
    throw usageError('--id and --timestamp go with a Standard Webhooks signature (the webhook-signature header, "v1,<base64>").');
  }
  // Bad input is bad usage (exit 2), said before any checking: exit 1 is for "checked, and it does not verify".
  if (standard && !/^\d{1,15}$/.test(options.timestamp!.trim())) {
    throw usageError(
      `--timestamp ${JSON.stringify(options.timestamp)} is not whole Unix seconds: give the webhook-timestamp header the receiver got, e.g. 1674087231.`,
    );
  }
  const configured = options.secrets && options.secrets.length > 0 ? null : await input.configuredSecret();
  const secrets = options.secrets && options.secrets.length > 0 ? options.secrets : configured === null ? [] : [configured];
  if (secrets.length === 0) {
    throw usageError(
      `verify needs a secret: pass --secret <secret> or --secret-env <name>, or configure one ("${commandLine('settings set webhook-secret -')}").`,
    );
  }
  for (const [index, secret] of secrets.entries()) {
    // A whsec_ secret is a base64 key only to Standard Webhooks; X-Webhook-Signature signs with any secret's text.
    const problem = secretProblem(secret) ?? (standard ? standardSecretProblem(secret) : undefined);
    if (problem)
      throw usageError(`${configured !== null ? 'The configured webhook secret' : secretLabel(index, secrets.length, options.secretEnv)} ${problem}.`);
  }
  const maxBytes = options.maxBody ?? DEFAULT_MAX_BODY_BYTES;
  const tooLarge = 'a webhook body is well under 1 KiB; is this the request body? (--max-body raises the limit)';
  let body: Buffer;
  if (options.file !== undefined) {
    const file = path.resolve(input.cwd, options.file);
    const kind = notRegularFile(file);
    if (kind)
      throw usageError(
        `Body file ${options.file} is ${kind}, not a regular file. Pipe it to standard input instead: ... | license-manager verify --signature <hex>`,
      );
    const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    if (size > maxBytes) throw usageError(`Body file ${options.file} is ${size} bytes, over the limit of ${maxBytes} bytes: ${tooLarge}`);
    body = await readCapped(fs.createReadStream(file), { maxBytes, what: `body file ${options.file}`, tooLarge, stop: input.stop });
  } else {
    body = await readCapped(input.stdin(), { maxBytes, what: 'the body on standard input', tooLarge, stop: input.stop });
  }
  const headers = standard
    ? { 'webhook-id': options.id, 'webhook-timestamp': options.timestamp, 'webhook-signature': options.signature }
    : { 'x-webhook-signature': options.signature };
  return verifyRequest(body, headers, secrets, Math.floor((input.clock ?? systemClock).now().getTime() / 1000));
}
