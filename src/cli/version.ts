import { createRequire } from 'node:module';

/** The version in package.json, found from src/cli (tests), dist/src/cli (built) or dist/cli (the bundle) alike. */
export function packageVersion(): string {
  const require = createRequire(import.meta.url);
  for (const candidate of ['../../package.json', '../../../package.json']) {
    try {
      const manifest = require(candidate) as { name?: string; version?: string };
      if (manifest.name === 'license-manager' && manifest.version) return manifest.version;
    } catch {
      // not at this depth
    }
  }
  return 'unknown';
}
