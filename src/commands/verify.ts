import fs from 'node:fs';
import path from 'node:path';
import { usageError } from '../errors.js';
import { notRegularFile } from '../file-kind.js';
import { readCapped } from '../read-input.js';
import { DEFAULT_MAX_BODY_BYTES, verifySignature, type VerifyResult } from '../webhooks/verify.js';
import { commandLine } from '../command-line.js';

export interface VerifyOptions {
  /** Given with --secret or --secret-env; otherwise `configuredSecret` is asked. */
  secret?: string;
  signature?: string;
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
}

/** `verify`: reads the body from --file or from standard input, never more than --max-body, and stops on a signal. */
export async function verifyCommand(options: VerifyOptions, input: VerifyInput): Promise<VerifyResult> {
  if (options.signature === undefined) throw usageError('verify needs --signature <hex> (the X-Webhook-Signature header the receiver got).');
  const secret = options.secret ?? (await input.configuredSecret());
  if (secret === null) {
    throw usageError(`verify needs a secret: pass --secret <secret> or --secret-env <name>, or configure one ("${commandLine('settings set webhook-secret -')}").`);
  }
  const maxBytes = options.maxBody ?? DEFAULT_MAX_BODY_BYTES;
  const tooLarge = 'a webhook body is well under 1 KiB; is this the request body? (--max-body raises the limit)';
  let body: Buffer;
  if (options.file !== undefined) {
    const file = path.resolve(input.cwd, options.file);
    const kind = notRegularFile(file);
    if (kind) throw usageError(`Body file ${options.file} is ${kind}, not a regular file. Pipe it to standard input instead: ... | license-manager verify --signature <hex>`);
    const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    if (size > maxBytes) throw usageError(`Body file ${options.file} is ${size} bytes, over the limit of ${maxBytes} bytes: ${tooLarge}`);
    body = await readCapped(fs.createReadStream(file), { maxBytes, what: `body file ${options.file}`, tooLarge, stop: input.stop });
  } else {
    body = await readCapped(input.stdin(), { maxBytes, what: 'the body on standard input', tooLarge, stop: input.stop });
  }
  return verifySignature(body, options.signature, secret);
}
