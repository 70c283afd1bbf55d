import path from 'node:path';
import fs from 'node:fs/promises';
import { usageError } from '../errors.js';
import { verifySignature, type VerifyResult } from '../webhooks/verify.js';

export interface VerifyOptions {
  secret?: string;
  signature?: string;
  file?: string;
}

/** `verify`: needs no database; reads the body from --file or from standard input. */
export async function verifyCommand(options: VerifyOptions, stdin: () => Promise<Buffer>, cwd: string): Promise<VerifyResult> {
  if (options.secret === undefined) throw usageError('verify needs --secret <secret> (the webhook secret the receiver uses).');
  if (options.signature === undefined) throw usageError('verify needs --signature <hex> (the X-Webhook-Signature header the receiver got).');
  let body: Buffer;
  if (options.file !== undefined) {
    try {
      body = await fs.readFile(path.resolve(cwd, options.file));
    } catch (error) {
      throw usageError(`Cannot read body file ${options.file}: ${(error as Error).message}`, { cause: error });
    }
  } else {
    body = await stdin();
  }
  return verifySignature(body, options.signature, options.secret);
}
