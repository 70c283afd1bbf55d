import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import { readmeBlocks, ROOT } from '../helpers/readme.js';
import { workspace } from '../helpers/workspace.js';

const section = 'When events are sent';

test("README's forecast block is what the command prints for the walkthrough's licenses and the settings it names", async () => {
  const block = readmeBlocks().find(
    (candidate) => candidate.section === section && candidate.language === 'text' && candidate.lines[0]?.startsWith('$ license-manager licenses forecast'),
  );
  expect(block).toBeDefined();
  const [command, ...expected] = block!.lines;
  const ws = workspace({ expirations: { warningDays: [7, 1], lookbackDays: 7, afterExpiryDays: [10], products: { 'PROD-002': { warningDays: [30, 7] } } } });
  expect((await ws.cli(['licenses', 'import', path.join(ROOT, 'examples', 'licenses.csv')])).code).toBe(0);
  const args = command!.replace('$ license-manager ', '').split(' ');
  const result = await ws.cli(args, { env: { COLUMNS: '80' } });
  expect(result.code).toBe(0);
  expect(result.stdout.trimEnd()).toBe(expected.join('\n').trimEnd());
});

test("README's reminder body is the one the job sends (test/integration/reminders-job.test.ts checks those bytes)", () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const body = readmeBlocks().find(
    (candidate) => candidate.section === section && candidate.language === 'json' && candidate.lines[0]?.includes('license.expired_reminder'),
  );
  const job = fs.readFileSync(path.join(ROOT, 'test', 'integration', 'reminders-job.test.ts'), 'utf8');
  expect(job).toContain(`'${body!.lines[0]!}'`);
  expect(readme).toContain('### Per-product schedules and after-expiry reminders');
});
