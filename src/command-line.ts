/** What a hint needs to know about the command line that is running: the config file it was given (-c), absolute. */
interface Invocation {
  configFile?: string | undefined;
}

/**
 * The command running now. A plain variable, not an AsyncLocalStorage: one of those turns on async hooks for
 * every promise of the process, and a delivery run makes several per event. A process runs one command
 * (bin/ calls main() once; tests call it one command after another); a command started while another runs
 * is the current one until it ends.
 */
let current: Invocation | undefined;

/** Runs `fn` with hints that name this config file (an explicit -c), so a command they suggest reaches the same database. */
export async function withInvocation<T>(invocation: Invocation, fn: () => Promise<T>): Promise<T> {
  const before = current;
  current = invocation;
  try {
    return await fn();
  } finally {
    if (current === invocation) current = before;
  }
}

/**
 * A command to suggest: `license-manager deliveries retry --abandoned`, with `-c <config>` when the run was given
 * one. Typed elsewhere (the release folder, another shell) without it, the suggestion would reach another
 * database, or create an empty one.
 */
export function commandLine(args: string): string {
  const configFile = current?.configFile;
  return configFile ? `license-manager -c ${shellWord(configFile)} ${args}` : `license-manager ${args}`;
}

/** A path as one shell word: quoted only when it needs it. */
export function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}
