// The README's "Monitoring the job" recipes hold: its config blocks are valid config, and every metric its alert rules and table name is one the textfile really has.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { expect, test } from '@jest/globals';
import { configSchema, describeZodError } from '../../src/config/schema.js';
import { renderMetrics } from '../../src/monitoring/prometheus.js';
import { readmeBlocks, ROOT } from '../helpers/readme.js';
import { tempDir } from '../helpers/temp-dir.js';

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

test('the paragraph on a run that cannot open its database says what it writes with no file and that a kept endpoint age is not counted on', () => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8').replace(/\s+/g, ' ');
  const paragraph = readme.slice(readme.indexOf('A run that cannot open its database'), readme.indexOf('Only `process-expirations` writes it'));
  expect(paragraph).toContain('With no file yet it writes those lines and `license_manager_last_success_timestamp_seconds` at 0');
  expect(paragraph).toContain(
    'A kept `license_manager_endpoint_oldest_undelivered_age_seconds` is the age when the last run that opened the database ended, not counted on since',
  );
});

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

(promtool ? test : test.skip)(
  `the alert rules as promtool runs them: one deferred delivery (exit 4) fires LicenseManagerNoRecentSuccess, not LicenseManagerRunFailed${promtool ? '' : ' (skipped: promtool is not installed here)'}`,
  () => {
    const dir = tempDir();
    const rules = readmeBlocks()
      .filter((block) => block.section === SECTION && block.language === 'yaml' && block.lines.some((line) => line.includes('- alert:')))
      .map((block, index) => {
        const file = path.join(dir, `rules-${index}.yml`);
        fs.writeFileSync(file, `${block.lines.join('\n')}\n`);
        return file;
      });
    expect(rules).toHaveLength(2);
    const checked = spawnSync('promtool', ['check', 'rules', ...rules], { encoding: 'utf8' });
    expect([checked.status, checked.stderr]).toEqual([0, '']);
    // A daily job; its last run finished at 0 (time() starts there), the run before it, which exited 0, a day earlier.
    const scenario = (exitCode: number, lastRunAt: number, alerts: Record<string, boolean>) => `
  - interval: 1m
    input_series:
      - { series: 'license_manager_last_run_exit_code{job="lm"}', values: '${exitCode}x200' }
      - { series: 'license_manager_last_run_timestamp_seconds{job="lm"}', values: '${lastRunAt}x200' }
      - { series: 'license_manager_last_success_timestamp_seconds{job="lm"}', values: '-86400x200' }
    alert_rule_test:
${Object.entries(alerts)
  .map(
    ([alert, fires]) => `      - eval_time: 150m
        alertname: ${alert}
        exp_alerts: ${fires ? `[{ exp_labels: { job: lm, severity: page }, exp_annotations: ${JSON.stringify(annotations(alert, exitCode))} }]` : '[]'}`,
  )
  .join('\n')}`;
    const annotations = (alert: string, exitCode: number) =>
      alert === 'LicenseManagerNoRecentSuccess'
        ? {
            summary: 'license-manager has not finished a run with exit 0 for over 26 hours',
            description: `Last run exit code ${exitCode}; see license-manager status.`,
          }
        : {
            summary: 'license-manager: the last run failed, was refused or abandoned deliveries, or none finished for over 26 hours',
            description: 'Exit 4 (deliveries waiting on a receiver) does not page here; see license-manager status.',
          };
    const tests = path.join(dir, 'tests.yml');
    fs.writeFileSync(
      tests,
      [
        `rule_files: ${JSON.stringify(rules)}`,
        'evaluation_interval: 1m',
        'tests:',
        // Exit 4: 2.5 hours after the run, 26.5 hours after the last exit 0.
        scenario(4, 0, { LicenseManagerNoRecentSuccess: true, LicenseManagerRunFailed: false }),
        // Abandoned deliveries, a refused run: both page.
        scenario(3, 0, { LicenseManagerNoRecentSuccess: true, LicenseManagerRunFailed: true }),
        scenario(2, 0, { LicenseManagerRunFailed: true }),
        // No run finished for 26 hours, the last one with exit 4: the job has stopped.
        scenario(4, -86400, { LicenseManagerRunFailed: true }),
      ].join('\n'),
    );
    const run = spawnSync('promtool', ['test', 'rules', tests], { encoding: 'utf8' });
    expect([run.status, run.stdout + run.stderr]).toEqual([0, expect.stringContaining('SUCCESS')]);
  },
);
