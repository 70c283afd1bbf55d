/** A response whose status code is no HTTP status (RFC 9110 §15: three digits, 100 to 599); the receiver is broken. */
export class UnusableStatus extends Error {
  constructor(readonly statusCode: string) {
    super(`the receiver answered with status ${statusCode}, which is not an HTTP status (RFC 9110 §15: 100 to 599): fix the receiver`);
    this.name = 'UnusableStatus';
  }
}

/** The UnusableStatus somewhere in an error's chain of causes (fetch and ofetch wrap what the socket reported). */
export function unusableStatusIn(error: unknown): UnusableStatus | undefined {
  let current: unknown = error;
  for (let depth = 0; current && typeof current === 'object' && depth < 8; depth += 1) {
    if (current instanceof UnusableStatus) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

/** The status code of an HTTP/1.x status line at the start of `head`, when one is there and is no HTTP status; undefined otherwise. */
export function unusableStatusLine(head: string): string | undefined {
  const code = /^HTTP\/\d(?:\.\d)? +(\d+)[ \r\n]/.exec(head)?.[1];
  if (code === undefined) return undefined;
  return code.length === 3 && Number(code) >= 100 && Number(code) <= 599 ? undefined : code;
}
