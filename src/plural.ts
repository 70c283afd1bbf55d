// Irregular plurals of the words messages count; any other word takes an "s".
const PLURALS: Record<string, string> = { delivery: 'deliveries' };

/** "1 delivery", "2 deliveries", "0 events": a count and its noun, so no message says "1 deliveries". */
export function plural(count: number, word: string): string {
  return `${count} ${count === 1 ? word : (PLURALS[word] ?? `${word}s`)}`;
}
