// Text cut to fit a bounded column or message.

/** `text`, or its first `max - 1` characters and "…" when it is longer than `max`. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
