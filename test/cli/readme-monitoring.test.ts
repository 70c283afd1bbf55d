// The README's "Monitoring the job" recipes hold: its config blocks are valid config, and every metric its alert rules and table name is one the textfile really has.
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import { configSchema, describeZodError } from '../../src/config/schema.js';
import { renderMetrics } from '../../src/monitoring/prometheus.js';
import { readmeBlocks, ROOT } from '../helpers/readme.js';

const SECTION = 'Monitoring the job: heartbeats, Prometheus, OpenTelemetry';

test('every JSON block of the section is a valid config (the ping URL, the textfile, the kinds)', () => {
  const blocks = readmeBlocks().filter((block) => block.section === SECTION && block.language === 'json');
  expect(blocks.length).toBeGreaterThanOrEqual(2);
  for (const block of blocks) {
    const parsed = configSchema.safeParse(JSON.parse(block.lines.join('\n')));
    expect(parsed.success ? [] : describeZodError(parsed.error)).toEqual([]);
  }
});

test('every license_manager_ metric the section names (table, alert rules, examples) is in a real textfile', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf(`## ${SECTION}`), readme.indexOf('## Using PostgreSQL or MySQL'));
  const text = renderMetrics(
    {
      version: '0.1.0',
      lastSuccessAt: new Date('2026-01-01T08:00:05Z'),
      lastRun: { startedAt: new Date('2026-01-01T08:00:00Z'), finishedAt: new Date('2026-01-01T08:00:05Z'), exitCode: 0 },
      eventsRecorded: [{ eventType: 'license.expired', count: 1 }],
      deliveries: [{ eventType: 'license.expired', status: 'delivered', count: 1 }],
      endpoints: [{ name: 'default', deferred: 0, parked: 0, abandoned: 0, consecutiveFailures: 0, oldestUndeliveredAt: null, circuitOpen: false }],
    },
    new Date('2026-01-01T09:00:00Z'),
  );
  const families = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!));
  // `_last_run_duration_seconds` and the like in the table stand for license_manager_last_run_duration_seconds.
  const named = [...section.matchAll(/\b(license_manager)?(_[a-z_]+_(?:seconds|code|total|failures|info)|license_manager_[a-z_]+)\b/g)]
    .map((match) => (match[0].startsWith('license_manager') ? match[0] : `license_manager${match[0]}`))
    .filter((name) => name !== 'license_manager_');
  expect(named.length).toBeGreaterThan(8);
  for (const name of new Set(named)) expect([name, families.has(name)]).toEqual([name, true]);
});
