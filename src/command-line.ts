import { AsyncLocalStorage } from 'node:async_hooks';

/** What a hint needs to know about the command line that is running: the config file it was given (-c), absolute. */
interface Invocation {
  configFile?: string;
}

const current = new AsyncLocalStorage<Invocation>();

/** Runs `fn` with hints that name this config file (an explicit -c), so a command they suggest reaches the same database. */
export function withInvocation<T>(invocation: Invocation, fn: () => T): T {
  return current.run(invocation, fn);
}

/**
 * A command to suggest: `license-manager deliveries retry --abandoned`, with `-c <config>` when the run was given
 * one. Typed elsewhere (the release folder, another shell) without it, the suggestion would reach another
 * database, or create an empty one.
 */
export function commandLine(args: string): string {
  const configFile = current.getStore()?.configFile;
  return configFile ? `license-manager -c ${shellWord(configFile)} ${args}` : `license-manager ${args}`;
}

/** A path as one shell word: quoted only when it needs it. */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}
