import { EXIT, ExitError, usageError } from './errors.js';

export interface ReadCappedOptions {
  /** More than this is refused (exit 2) as soon as it arrives: an endless input must not fill the memory. */
  maxBytes: number;
  /** What is being read, for messages: "the body on standard input". */
  what: string;
  /** What to do when the input is too large, ending the message. */
  tooLarge: string;
  /** A first SIGINT/SIGTERM ends the read (exit 1) instead of waiting for an end that may never come. */
  stop?: AbortSignal | undefined;
}

/** Reads a stream to its end, at most `maxBytes`; the stream is destroyed when the read is cut short. */
export function readCapped(stream: NodeJS.ReadableStream & { destroy?(): unknown }, options: ReadCappedOptions): Promise<Buffer> {
  const { maxBytes, what, stop } = options;
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (error: Error | undefined, body?: Buffer) => {
      stream.off('data', onData).off('end', onEnd).off('error', onError);
      stop?.removeEventListener('abort', onAbort);
      if (error) {
        // Nothing more is wanted from it: a pipe or a device left open would keep the process alive.
        stream.destroy?.();
        reject(error);
      } else {
        resolve(body!);
      }
    };
    const onData = (chunk: Buffer | string) => {
      size += chunk.length;
      if (size > maxBytes) settle(usageError(`${what} is over the limit of ${maxBytes} bytes: ${options.tooLarge}`));
      else chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    };
    const onEnd = () => settle(undefined, Buffer.concat(chunks));
    const onError = (error: Error) => settle(usageError(`Cannot read ${what}: ${error.message}`, { cause: error }));
    const onAbort = () => settle(new ExitError(EXIT.failure, `Stopped by ${String(stop?.reason ?? 'a signal')} before ${what} ended: nothing was done.`));
    if (stop?.aborted) return onAbort();
    stop?.addEventListener('abort', onAbort, { once: true });
    stream.on('data', onData).on('end', onEnd).on('error', onError);
  });
}
