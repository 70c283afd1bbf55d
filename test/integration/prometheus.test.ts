// The Prometheus textfile: the exposition format checked by a real parser (and promtool where installed), hostile label values, and an atomic write a polling reader never sees half of.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, test } from '@jest/globals';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import { renderMetrics, textfileProblem, withUnopenedRun, writeTextfileAtomically, type MetricsSnapshot } from '../../src/monitoring/prometheus.js';
import { tempDir } from '../helpers/temp-dir.js';

const now = new Date('2026-03-01T02:10:00Z');

function aSnapshot(overrides: Partial<MetricsSnapshot> = {}): MetricsSnapshot {
  return {
    version: '0.1.0',
    lastSuccessAt: new Date('2026-03-01T02:00:07.250Z'),
    lastRun: { startedAt: new Date('2026-03-01T02:00:00Z'), finishedAt: new Date('2026-03-01T02:00:07.250Z'), exitCode: 0 },
    eventsRecorded: [
      { eventType: 'license.expiring', count: 40 },
      { eventType: 'license.expired', count: 12 },
    ],
    deliveries: [
      { eventType: 'license.expired', status: 'delivered', count: 11 },
      { eventType: 'license.expired', status: 'deferred', count: 1 },
      { eventType: 'license.expiring', status: 'delivered', count: 40 },
    ],
    endpoints: [
      { name: 'default', deferred: 0, parked: 0, abandoned: 0, consecutiveFailures: 0, oldestUndeliveredAt: null, circuitOpen: false },
      { name: 'crm', deferred: 1, parked: 0, abandoned: 2, consecutiveFailures: 6, oldestUndeliveredAt: new Date('2026-03-01T01:10:00Z'), circuitOpen: true },
    ],
    ...overrides,
  };
}

// Written out here, not imported: the test names what an operator's alert rules may rely on.
const EVENT_TYPES = ['license.expired', 'license.expired_reminder', 'license.expiring', 'license.update_support_expired'];
const STATUSES = ['abandoned', 'deferred', 'delivered', 'delivering', 'parked', 'pending', 'superseded'];

/** license_manager_events_recorded_total, every known type (0 unless `counts` has it), in the file's order. */
const eventLines = (counts: Record<string, number> = {}) =>
  EVENT_TYPES.map((type) => `license_manager_events_recorded_total{event_type="${type}"} ${counts[type] ?? 0}`);
/** license_manager_deliveries, every known type and status (0 unless `counts` has `<type> <status>`), in the file's order. */
const deliveryLines = (counts: Record<string, number> = {}) =>
  EVENT_TYPES.flatMap((type) =>
    STATUSES.map((status) => `license_manager_deliveries{event_type="${type}",status="${status}"} ${counts[`${type} ${status}`] ?? 0}`),
  );

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;

describe('rendering', () => {
  test('the whole file, family by family: HELP, TYPE, samples sorted, no timestamps', () => {
    expect(renderMetrics(aSnapshot(), now)).toBe(
      [
        '# HELP license_manager_build_info Always 1; the version label says which license-manager wrote this file.',
        '# TYPE license_manager_build_info gauge',
        'license_manager_build_info{version="0.1.0"} 1',
        '# HELP license_manager_last_success_timestamp_seconds When the last process-expirations run that exited 0 finished, in Unix seconds; 0 before the first. Alert on time() minus this.',
        '# TYPE license_manager_last_success_timestamp_seconds gauge',
        'license_manager_last_success_timestamp_seconds 1772330407.25',
        '# HELP license_manager_last_run_timestamp_seconds When the last process-expirations run finished, whatever its exit status, in Unix seconds.',
        '# TYPE license_manager_last_run_timestamp_seconds gauge',
        'license_manager_last_run_timestamp_seconds 1772330407.25',
        '# HELP license_manager_last_run_duration_seconds How long the last process-expirations run took, to the second (runs record whole seconds).',
        '# TYPE license_manager_last_run_duration_seconds gauge',
        'license_manager_last_run_duration_seconds 7.25',
        '# HELP license_manager_last_run_exit_code The exit status of the last process-expirations run: 0 done, 1 failed, 2 bad usage or configuration, 3 deliveries abandoned, 4 deliveries waiting on a failing receiver.',
        '# TYPE license_manager_last_run_exit_code gauge',
        'license_manager_last_run_exit_code 0',
        '# HELP license_manager_events_recorded_total Events recorded for delivery since the database began, by event type.',
        '# TYPE license_manager_events_recorded_total counter',
        ...eventLines({ 'license.expired': 12, 'license.expiring': 40 }),
        '# HELP license_manager_deliveries Deliveries (one per event and endpoint) by event type and current status.',
        '# TYPE license_manager_deliveries gauge',
        ...deliveryLines({ 'license.expired deferred': 1, 'license.expired delivered': 11, 'license.expiring delivered': 40 }),
        '# HELP license_manager_endpoint_deliveries Deliveries to an endpoint that are deferred to a later run, parked while it is disabled, or abandoned.',
        '# TYPE license_manager_endpoint_deliveries gauge',
        'license_manager_endpoint_deliveries{endpoint="crm",status="abandoned"} 2',
        'license_manager_endpoint_deliveries{endpoint="crm",status="deferred"} 1',
        'license_manager_endpoint_deliveries{endpoint="crm",status="parked"} 0',
        'license_manager_endpoint_deliveries{endpoint="default",status="abandoned"} 0',
        'license_manager_endpoint_deliveries{endpoint="default",status="deferred"} 0',
        'license_manager_endpoint_deliveries{endpoint="default",status="parked"} 0',
        '# HELP license_manager_endpoint_consecutive_failures Failed delivery attempts to an endpoint since its last success.',
        '# TYPE license_manager_endpoint_consecutive_failures gauge',
        'license_manager_endpoint_consecutive_failures{endpoint="crm"} 6',
        'license_manager_endpoint_consecutive_failures{endpoint="default"} 0',
        '# HELP license_manager_endpoint_oldest_undelivered_age_seconds How long the oldest delivery to an endpoint that is not delivered yet has waited since it was recorded; 0 when none waits.',
        '# TYPE license_manager_endpoint_oldest_undelivered_age_seconds gauge',
        'license_manager_endpoint_oldest_undelivered_age_seconds{endpoint="crm"} 3600',
        'license_manager_endpoint_oldest_undelivered_age_seconds{endpoint="default"} 0',
        '# HELP license_manager_endpoint_circuit_open 1 while the circuit of an endpoint is open (runs start no attempt to it until a probe succeeds), else 0.',
        '# TYPE license_manager_endpoint_circuit_open gauge',
        'license_manager_endpoint_circuit_open{endpoint="crm"} 1',
        'license_manager_endpoint_circuit_open{endpoint="default"} 0',
        '',
      ].join('\n'),
    );
  });

  test('a real parser reads every family with its help, type and values', () => {
    const families = parsePrometheusTextFormat(renderMetrics(aSnapshot(), now));
    const byName = Object.fromEntries(families.map((family) => [family.name, family]));
    expect(families.map((family) => [family.name, family.type])).toEqual([
      ['license_manager_build_info', 'GAUGE'],
      ['license_manager_last_success_timestamp_seconds', 'GAUGE'],
      ['license_manager_last_run_timestamp_seconds', 'GAUGE'],
      ['license_manager_last_run_duration_seconds', 'GAUGE'],
      ['license_manager_last_run_exit_code', 'GAUGE'],
      ['license_manager_events_recorded_total', 'COUNTER'],
      ['license_manager_deliveries', 'GAUGE'],
      ['license_manager_endpoint_deliveries', 'GAUGE'],
      ['license_manager_endpoint_consecutive_failures', 'GAUGE'],
      ['license_manager_endpoint_oldest_undelivered_age_seconds', 'GAUGE'],
      ['license_manager_endpoint_circuit_open', 'GAUGE'],
    ]);
    for (const family of families) {
      expect(family.help.length).toBeGreaterThan(10);
      for (const sample of family.metrics) {
        expect(Number.isFinite(Number(sample.value))).toBe(true);
        expect(sample.timestamp_ms).toBeUndefined();
      }
    }
    expect(byName.license_manager_last_run_duration_seconds!.metrics).toEqual([{ value: '7.25' }]);
    expect(byName.license_manager_endpoint_consecutive_failures!.metrics).toEqual([
      { value: '6', labels: { endpoint: 'crm' } },
      { value: '0', labels: { endpoint: 'default' } },
    ]);
  });

  test('names follow the conventions: license_manager_ prefix, counters end in _total and only they do, base units', () => {
    const text = renderMetrics(aSnapshot(), now);
    const types = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1]!, match[2]!] as const);
    for (const [name, type] of types) {
      expect(name).toMatch(/^license_manager_[a-z_]+$/);
      expect(name.endsWith('_total')).toBe(type === 'counter');
      expect(name).not.toMatch(/_(ms|milliseconds|minutes|hours|days)$/);
    }
    // Every sample belongs to a family announced just before it, and each family is announced once.
    let current = '';
    for (const line of text.trimEnd().split('\n')) {
      const type = /^# TYPE (\S+) /.exec(line);
      if (type) current = type[1]!;
      else if (!line.startsWith('#')) expect(line.split(/[{ ]/)[0]).toBe(current);
    }
    expect(new Set(types.map(([name]) => name)).size).toBe(types.length);
  });

  test('before the first run: last success is 0 (so an alert on its age fires), every event type and delivery status at 0, the last-run families left out', () => {
    const text = renderMetrics(aSnapshot({ lastSuccessAt: null, lastRun: null, eventsRecorded: [], deliveries: [], endpoints: [] }), now);
    expect(text).toBe(
      [
        '# HELP license_manager_build_info Always 1; the version label says which license-manager wrote this file.',
        '# TYPE license_manager_build_info gauge',
        'license_manager_build_info{version="0.1.0"} 1',
        '# HELP license_manager_last_success_timestamp_seconds When the last process-expirations run that exited 0 finished, in Unix seconds; 0 before the first. Alert on time() minus this.',
        '# TYPE license_manager_last_success_timestamp_seconds gauge',
        'license_manager_last_success_timestamp_seconds 0',
        '# HELP license_manager_events_recorded_total Events recorded for delivery since the database began, by event type.',
        '# TYPE license_manager_events_recorded_total counter',
        ...eventLines(),
        '# HELP license_manager_deliveries Deliveries (one per event and endpoint) by event type and current status.',
        '# TYPE license_manager_deliveries gauge',
        ...deliveryLines(),
        '',
      ].join('\n'),
    );
  });

  test('a failed last run keeps the older success time; rows for one series add up; circuit state is left out when unknown', () => {
    const text = renderMetrics(
      aSnapshot({
        lastSuccessAt: new Date('2026-02-28T02:00:05Z'),
        lastRun: { startedAt: new Date('2026-03-01T02:00:00Z'), finishedAt: new Date('2026-03-01T02:00:01Z'), exitCode: 3 },
        eventsRecorded: [
          { eventType: 'license.expired', count: 2 },
          { eventType: 'license.expired', count: 3 },
        ],
        endpoints: [{ name: 'default', deferred: 0, parked: 0, abandoned: 1, consecutiveFailures: 4, oldestUndeliveredAt: null }],
      }),
      now,
    );
    expect(text).toContain('\nlicense_manager_last_success_timestamp_seconds 1772244005\n');
    expect(text).toContain('\nlicense_manager_last_run_exit_code 3\n');
    expect(text).toContain('\nlicense_manager_events_recorded_total{event_type="license.expired"} 5\n');
    expect(text).not.toContain('circuit_open');
  });

  test('an endpoint named twice is a bug in the caller, said plainly', () => {
    const endpoint = { name: 'crm', deferred: 0, parked: 0, abandoned: 0, consecutiveFailures: 0, oldestUndeliveredAt: null };
    expect(() => renderMetrics(aSnapshot({ endpoints: [endpoint, endpoint] }), now)).toThrow('endpoint "crm" appears twice in the metrics snapshot');
  });

  test('hostile label values (quotes, backslashes, newlines, braces, commas, Unicode) round-trip through the parser', () => {
    const hostile = ['say "hi"', 'C:\\path\\n', 'two\nlines', 'a\\"b', '}{,=', 'ünï ☃ 𝄞', '\\', '"', 'trailing\\'];
    const text = renderMetrics(
      aSnapshot({
        version: hostile[0]!,
        eventsRecorded: hostile.map((eventType, index) => ({ eventType, count: index + 1 })),
        endpoints: hostile.map((name) => ({ name, deferred: 1, parked: 2, abandoned: 3, consecutiveFailures: 4, oldestUndeliveredAt: null })),
      }),
      now,
    );
    // One line per sample: no raw newline escaped into the file.
    expect(text.split('\n').filter((line) => line.startsWith('license_manager_events_recorded_total'))).toHaveLength(hostile.length + EVENT_TYPES.length);
    const families = Object.fromEntries(parsePrometheusTextFormat(text).map((family) => [family.name, family]));
    expect(families.license_manager_build_info!.metrics[0]!.labels).toEqual({ version: 'say "hi"' });
    const events = families.license_manager_events_recorded_total!.metrics.map((sample) => [sample.labels!.event_type!, Number(sample.value)] as const);
    expect(new Map(events)).toEqual(
      new Map([...EVENT_TYPES.map((eventType) => [eventType, 0] as const), ...hostile.map((eventType, index) => [eventType, index + 1] as const)]),
    );
    const failures = families.license_manager_endpoint_consecutive_failures!.metrics.map((sample) => sample.labels!.endpoint);
    expect(failures).toHaveLength(hostile.length);
    expect(new Set(failures)).toEqual(new Set(hostile));
  });

  (promtool ? test : test.skip)(
    promtool
      ? 'promtool check metrics accepts the file, hostile labels included'
      : 'promtool check metrics (skipped: promtool is not installed; `apt-get install prometheus` brings it, about 96 MB)',
    () => {
      for (const snapshot of [
        aSnapshot(),
        aSnapshot({ lastRun: null, lastSuccessAt: null }),
        aSnapshot({ lastRun: null, lastSuccessAt: null, eventsRecorded: [], deliveries: [], endpoints: [] }),
        aSnapshot({ endpoints: [{ name: 'we"ird\\\nname', deferred: 1, parked: 0, abandoned: 0, consecutiveFailures: 0, oldestUndeliveredAt: null }] }),
      ]) {
        const result = spawnSync('promtool', ['check', 'metrics'], { input: renderMetrics(snapshot, now), encoding: 'utf8' });
        expect({ status: result.status, output: `${result.stdout}${result.stderr}` }).toEqual({ status: 0, output: '' });
      }
      // The check can fail: promtool does flag a broken file.
      const broken = spawnSync('promtool', ['check', 'metrics'], { input: 'license_manager_x{a="b} 1\n', encoding: 'utf8' });
      expect(broken.status).not.toBe(0);
    },
  );
});

describe('after a run that could not open its database', () => {
  const run = { version: '0.2.0', startedAt: new Date('2026-03-02T02:00:00Z'), finishedAt: new Date('2026-03-02T02:00:03Z'), exitCode: 1 };
  const RUN_LINES = [
    'license_manager_build_info{version="0.2.0"} 1',
    'license_manager_last_run_timestamp_seconds 1772416803',
    'license_manager_last_run_duration_seconds 3',
    'license_manager_last_run_exit_code 1',
  ];
  const samplesOf = (text: string) => text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));

  test("the last run's lines (and the build info) become this run's, in place; every other line stays as it was", () => {
    const before = renderMetrics(aSnapshot(), now);
    const after = withUnopenedRun(before, run);
    const changed = new Set([
      'license_manager_build_info',
      'license_manager_last_run_timestamp_seconds',
      'license_manager_last_run_duration_seconds',
      'license_manager_last_run_exit_code',
    ]);
    const kept = (text: string) => text.split('\n').filter((line) => !changed.has(/^[a-z_]+/.exec(line)?.[0] ?? ''));
    expect(kept(after)).toEqual(kept(before));
    expect(samplesOf(after).filter((line) => changed.has(/^[a-z_]+/.exec(line)![0]))).toEqual(RUN_LINES);
    // HELP and TYPE as a run writes them: the same file as a snapshot with this run would render, but for its counts.
    expect(after.split('\n').filter((line) => line.startsWith('#'))).toEqual(before.split('\n').filter((line) => line.startsWith('#')));
    expect(parsePrometheusTextFormat(after).map((family) => family.name)).toEqual(parsePrometheusTextFormat(before).map((family) => family.name));
    // The endpoint's age is kept as the last good run computed it, not counted on (the README says so).
    expect(after).toContain('\nlicense_manager_endpoint_oldest_undelivered_age_seconds{endpoint="crm"} 3600\n');
    // Twice is the same as once.
    expect(withUnopenedRun(after, run)).toBe(after);
  });

  test('no file yet: those lines and the last success at 0 (as before a first success, so an alert on its age fires); a file without the last-run families gets them in their place', () => {
    const fresh = withUnopenedRun(null, run);
    expect(samplesOf(fresh)).toEqual([RUN_LINES[0], 'license_manager_last_success_timestamp_seconds 0', ...RUN_LINES.slice(1)]);
    expect(fresh).toBe(
      renderMetrics({ version: '0.2.0', lastSuccessAt: null, lastRun: run, eventsRecorded: [], deliveries: [], endpoints: [] }, now)
        .split('\n')
        .filter((line) => !/(events_recorded|_deliveries)/.test(line))
        .join('\n'),
    );
    // A file with no last success (only a run that could not read the file before writes one) keeps it unknown: 0
    // would say "never succeeded" of an installation that did.
    expect(
      samplesOf(
        withUnopenedRun(
          fresh
            .split('\n')
            .filter((line) => !line.includes('last_success'))
            .join('\n'),
          run,
        ),
      ),
    ).toEqual(samplesOf(fresh).filter((line) => !line.includes('last_success')));
    expect(withUnopenedRun('', run)).toBe(fresh);
    // Before any run (no last-run families): they go after the last success, as a run's file has them.
    const beforeAnyRun = renderMetrics(aSnapshot({ lastRun: null, lastSuccessAt: null }), now);
    const after = withUnopenedRun(beforeAnyRun, run);
    expect(after).toBe(renderMetrics(aSnapshot({ version: '0.2.0', lastRun: run, lastSuccessAt: null }), now));
  });

  test('an odd file keeps only what a run writes: CR LF ends read as LF, comments and garbage dropped, a family or series given twice kept once', () => {
    const good = renderMetrics(aSnapshot(), now);
    const expected = withUnopenedRun(good, run);
    // CR LF line ends: no line keeps its \r (promtool: unknown metric type "gauge\r").
    expect(withUnopenedRun(good.replace(/\n/g, '\r\n'), run)).toBe(expected);
    // A comment, a garbage line, a sample with a timestamp or of another family, and a half-written last line.
    const noisy = good
      .replace('# HELP license_manager_deliveries', '# written by hand\nnot a metric at all\n# HELP license_manager_deliveries')
      .replace(
        '# HELP license_manager_endpoint_deliveries',
        'some_other_metric 1\nlicense_manager_deliveries{event_type="x",status="y"} 1 1700000000000\n# HELP license_manager_endpoint_deliveries',
      )
      .concat('license_manager_endpoint_circuit_open{endpoint="crm"');
    expect(withUnopenedRun(noisy, run)).toBe(expected);
    // Every block of a replaced family is replaced, a second block of a kept one dropped, a series given twice kept once.
    const lastRun = good.split('\n').filter((line) => line.includes('license_manager_last_run_exit_code'));
    const failures = good.split('\n').filter((line) => line.includes('license_manager_endpoint_consecutive_failures'));
    const twice = `${good}${lastRun.join('\n')}\n${failures.join('\n')}\n`.replace(
      'license_manager_endpoint_consecutive_failures{endpoint="crm"} 6',
      'license_manager_endpoint_consecutive_failures{endpoint="crm"} 6\nlicense_manager_endpoint_consecutive_failures{endpoint="crm"} 7',
    );
    expect(withUnopenedRun(twice, run)).toBe(expected);
    // A comment after a replaced block is dropped, not the block after it.
    expect(withUnopenedRun(good.replace('# HELP license_manager_events', '# note\n# HELP license_manager_events'), run)).toBe(expected);
    // Nothing usable: as with no file.
    expect(withUnopenedRun('\u0000garbage\r\n{}\n', run)).toBe(withUnopenedRun(null, run));
    if (promtool) {
      for (const text of [noisy, twice, good.replace(/\n/g, '\r\n')]) {
        const checked = spawnSync('promtool', ['check', 'metrics'], { input: withUnopenedRun(text, run), encoding: 'utf8' });
        expect([checked.status, checked.stdout, checked.stderr]).toEqual([0, '', '']);
      }
    }
  });

  test("a file that cannot be read: only this run's lines and the build info, no last success (this run cannot know it)", () => {
    expect(samplesOf(withUnopenedRun(null, run, { unreadable: true }))).toEqual(RUN_LINES);
  });

  (promtool ? test : test.skip)('promtool check metrics passes on both', () => {
    for (const text of [withUnopenedRun(renderMetrics(aSnapshot(), now), run), withUnopenedRun(null, run), withUnopenedRun(null, run, { unreadable: true })]) {
      const checked = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect([checked.status, checked.stdout, checked.stderr]).toEqual([0, '', '']);
    }
  });
});

describe('writing the textfile', () => {
  test('writes, then replaces, leaving no temporary file behind', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'license_manager.prom');
    expect(await writeTextfileAtomically(target, 'one\n')).toEqual({ ok: true, path: target });
    expect(await writeTextfileAtomically(target, 'two\n')).toEqual({ ok: true, path: target });
    expect(fs.readFileSync(target, 'utf8')).toBe('two\n');
    expect(fs.readdirSync(dir)).toEqual(['license_manager.prom']);
    expect(fs.statSync(target).mode & 0o777).toBe(0o644 & ~process.umask());
  });

  test('a folder that does not exist: an error value naming the path, nothing created', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'missing', 'license_manager.prom');
    expect(await writeTextfileAtomically(target, 'x\n')).toEqual({
      ok: false,
      path: target,
      error: `Cannot write the metrics file ${target}: the folder ${path.join(dir, 'missing')} does not exist. Create it, or set monitoring.textfile to a file in node_exporter's --collector.textfile.directory.`,
    });
    expect(await textfileProblem(target)).toBe(`its folder ${path.join(dir, 'missing')} does not exist`);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('a path that is a folder: an error value, and the temporary file is removed', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'textfiles');
    fs.mkdirSync(target);
    const result = await writeTextfileAtomically(target, 'x\n');
    expect(result).toEqual({
      ok: false,
      path: target,
      error: `Cannot write the metrics file ${target}: it is a folder; give the path of a file, such as ${path.join(target, 'license_manager.prom')}.`,
    });
    expect(await textfileProblem(target)).toBe(`${target} is a folder; give the path of a file, such as ${path.join(target, 'license_manager.prom')}`);
    expect(fs.readdirSync(dir)).toEqual(['textfiles']);
    expect(await textfileProblem(path.join(dir, 'fine.prom'))).toBeUndefined();
  });

  test('a folder nobody may write to: an error value naming it, the old file untouched', async () => {
    const dir = tempDir();
    const folder = path.join(dir, 'locked');
    fs.mkdirSync(folder);
    const target = path.join(folder, 'license_manager.prom');
    fs.writeFileSync(target, 'old\n');
    const asRoot = process.getuid?.() === 0;
    // root ignores modes; an immutable folder refuses new files even to root.
    const locked = asRoot ? spawnSync('chattr', ['+i', folder]).status === 0 : (fs.chmodSync(folder, 0o555), true);
    if (!locked) throw new Error(`cannot make ${folder} immutable (chattr +i failed): this file system does not support it`);
    try {
      const result = await writeTextfileAtomically(target, 'new\n');
      expect(result).toEqual({
        ok: false,
        path: target,
        error: `Cannot write the metrics file ${target}: no permission to create files in ${folder} (the file is written beside the target, then renamed over it). Let this user write there.`,
      });
      expect(fs.readFileSync(target, 'utf8')).toBe('old\n');
      expect(fs.readdirSync(folder)).toEqual(['license_manager.prom']);
      if (!asRoot) expect(await textfileProblem(target)).toBe(`this user may not create files in ${folder}`);
    } finally {
      if (asRoot) spawnSync('chattr', ['-i', folder]);
      else fs.chmodSync(folder, 0o755);
    }
  });

  test('a reader polling while the file is rewritten hundreds of times never sees a partial document', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'license_manager.prom');
    // Documents of very different sizes (a few kB to about 1.5 MB): a torn read would show as a text that is none of them.
    const documents = Array.from({ length: 8 }, (_, index) =>
      renderMetrics(
        aSnapshot({
          version: `v${index}`,
          endpoints: Array.from({ length: 10 + index * index * 80 }, (__, n) => ({
            name: `endpoint-${index}-${n}`,
            deferred: n,
            parked: 0,
            abandoned: 0,
            consecutiveFailures: 0,
            oldestUndeliveredAt: null,
          })),
        }),
        now,
      ),
    );
    const seen = await pollWhileWriting(target, documents, (text) => writeTextfileAtomically(target, text).then((result) => expect(result.ok).toBe(true)));
    expect(seen.reads).toBeGreaterThan(100);
    expect(seen.torn).toEqual([]);
  }, 120_000);

  test('the same reader does catch a plain, non-atomic write (the check above can fail)', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'license_manager.prom');
    const documents = Array.from({ length: 4 }, (_, index) => `${`# padding ${index}\n`.repeat(20_000 * (index + 1))}`);
    const seen = await pollWhileWriting(target, documents, (text) => fs.promises.writeFile(target, text));
    expect(seen.torn.length).toBeGreaterThan(0);
  }, 120_000);
});

/**
 * Writes each of `documents` in turn, 25 rounds, while a worker thread reads `target` in a tight loop and notes every
 * read that is not one of the documents whole (a missing file before the first write excepted).
 */
async function pollWhileWriting(target: string, documents: string[], write: (text: string) => Promise<unknown>): Promise<{ reads: number; torn: number[] }> {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { workerData, parentPort } = require('node:worker_threads');
    const fs = require('node:fs');
    const { target, documents, stop } = workerData;
    const whole = new Set(documents);
    let reads = 0;
    const torn = [];
    while (Atomics.load(stop, 0) === 0) {
      let text;
      try { text = fs.readFileSync(target, 'utf8'); } catch (error) { if (error.code === 'ENOENT') continue; throw error; }
      reads += 1;
      if (!whole.has(text) && torn.length < 20) torn.push(text.length);
    }
    parentPort.postMessage({ reads, torn });
    `,
    { eval: true, workerData: { target, documents, stop } },
  );
  const result = new Promise<{ reads: number; torn: number[] }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  for (let round = 0; round < 25; round += 1) {
    for (const document of documents) await write(document);
  }
  Atomics.store(stop, 0, 1);
  const seen = await result;
  await worker.terminate();
  return seen;
}
