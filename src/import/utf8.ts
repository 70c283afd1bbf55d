/**
 * Finds the first line of a byte stream that is not valid UTF-8, chunk by chunk. Decoders replace bad bytes
 * with U+FFFD, so "LIC-café" in Latin-1 and "LIC-cafè" would both read "LIC-caf�" and collide: an import
 * must refuse such a file, and say where.
 */
export class Utf8LineCheck {
  private decoder = new TextDecoder('utf-8', { fatal: true });
  private line = 1;
  /** The 1-based line of the first invalid byte, once one is seen. */
  firstBadLine: number | undefined;

  push(chunk: Uint8Array): void {
    if (this.firstBadLine !== undefined) return;
    let start = 0;
    while (start <= chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline + 1;
      // A multi-byte sequence never holds 0x0a, so cutting at newlines keeps every valid sequence whole.
      if (!this.check(chunk.subarray(start, end), true)) return;
      if (newline === -1) break;
      this.line += 1;
      start = end;
    }
  }

  /** Call at the end of the input: a sequence cut off by the end of the file is invalid too. */
  end(): void {
    if (this.firstBadLine === undefined) this.check(new Uint8Array(0), false);
  }

  private check(bytes: Uint8Array, stream: boolean): boolean {
    try {
      this.decoder.decode(bytes, { stream });
      return true;
    } catch {
      this.firstBadLine = this.line;
      return false;
    }
  }
}

/** What an import error says about bytes that are not UTF-8, with the fix. */
export const NOT_UTF8 = 'is not valid UTF-8 (save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv)';
