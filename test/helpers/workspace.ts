import fs from 'node:fs';
import path from 'node:path';
import { withContext, type CommandContext } from '../../src/commands/context.js';
import { upsertLicenses, type LicenseInput } from '../../src/storage/licenses.repository.js';
import { tempDir } from './temp-dir.js';

export interface Workspace {
  dir: string;
  configFile: string;
  databaseFile: string;
  env: NodeJS.ProcessEnv;
  /** Opens the real context (config file, migrated SQLite file) for one call, as a command does. */
  run<T>(fn: (context: CommandContext) => Promise<T>): Promise<T>;
  seed(licenses: LicenseInput[]): Promise<void>;
}

/** A temp dir with a config file (fast retries unless overridden) and its SQLite database. */
export function workspace(config: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): Workspace {
  const dir = tempDir();
  const configFile = path.join(dir, 'license-manager.config.json');
  const webhooks = { retryDelaysMs: [10, 20, 40], timeoutMs: 2000, ...(config.webhooks as object | undefined) };
  fs.writeFileSync(configFile, JSON.stringify({ ...config, database: { filename: './test.sqlite' }, webhooks }, null, 2));
  const ws: Workspace = {
    dir,
    configFile,
    databaseFile: path.join(dir, 'test.sqlite'),
    env,
    run: (fn) => withContext({ config: configFile, cwd: dir, env }, fn),
    seed: (licenses) => ws.run(async (context) => void (await upsertLicenses(context.db, licenses, '2024-01-01T00:00:00Z'))),
  };
  return ws;
}

let counter = 0;

/** A license builder: an active license with a unique code; dates as ISO strings. */
export function aLicense(overrides: Partial<LicenseInput> = {}): LicenseInput {
  counter += 1;
  return {
    license_code: `LIC-${String(counter).padStart(5, '0')}`,
    product_id: 'PROD-001',
    product_name: 'My Product',
    customer_id: `CUST-${counter}`,
    email: `customer${counter}@example.com`,
    status: 'active',
    expires_at: null,
    updates_until: null,
    ...overrides,
  };
}
