// Orders test files for jest: the longest first, so that no long file starts last and runs alone while the other
// workers stand idle. Jest's own sequencer does this from the durations it cached in an earlier run; a fresh
// clone (CI) has no cache, and jest then falls back to file size, which put calendar-simulation (95 s) last and
// left it running alone for its last 15 s. Files measured here run first, longest first; the rest follow in
// jest's own order (cached durations when there are some, then file size).
//
// SECONDS: each file's wall time in a full run with four workers (`npx jest --json --outputFile=…`, endTime -
// startTime) on the 2-core machine CI runs on, files of 3 s or more. A stale entry only changes an order; refresh
// them after a change that moves a file's time by much.
const Sequencer = require('@jest/test-sequencer').default;

const SECONDS = {
  'integration/calendar-simulation.test.ts': 112,
  'cli/database-outages.test.ts': 101,
  'cli/hostile-inputs.test.ts': 85,
  'cli/workers.test.ts': 79,
  'cli/delivery-engine.test.ts': 70,
  'integration/calendar-zones.test.ts': 62,
  'cli/recovery.test.ts': 59,
  'integration/renewals.test.ts': 56,
  'cli/readme.test.ts': 47,
  'integration/delivery-engine.test.ts': 43,
  'cli/botble-settings.test.ts': 39,
  'cli/calendar-cli.test.ts': 38,
  'integration/endpoints-fan-out.test.ts': 34,
  'cli/botble.test.ts': 34,
  'integration/retries-across-runs.test.ts': 31,
  'cli/package.test.ts': 30,
  'cli/servers.test.ts': 30,
  'cli/take-over.test.ts': 29,
  'integration/retry.test.ts': 27,
  'integration/reminders-job.test.ts': 26,
  'integration/reminder-simulation.test.ts': 21,
  'cli/monitoring-ping.test.ts': 17,
  'integration/dialects.test.ts': 16,
  'integration/process-expirations.test.ts': 16,
  'integration/big-ids.test.ts': 14,
  'cli/operator-day.test.ts': 13,
  'integration/licenses-import.test.ts': 12,
  'integration/superseded.test.ts': 11,
  'cli/botble-adoption.test.ts': 10,
  'cli/cli.test.ts': 10,
  'cli/clock-skew.test.ts': 10,
  'cli/monitoring-tracing.test.ts': 10,
  'cli/retries.test.ts': 9,
  'cli/operator.test.ts': 9,
  'integration/upgrade.test.ts': 8,
  'integration/heartbeat.test.ts': 8,
  'cli/monitoring-textfile.test.ts': 8,
  'integration/config-and-settings.test.ts': 8,
  'cli/terminal.test.ts': 7,
  'cli/endpoints.test.ts': 7,
  'integration/retries-migration.test.ts': 6,
  'integration/endpoints-migration.test.ts': 6,
  'cli/deliveries-stats.test.ts': 5,
  'integration/tracing.test.ts': 5,
  'cli/grants.test.ts': 5,
  'integration/answered-then-misbehaved.test.ts': 5,
  'cli/examples.test.ts': 5,
  'integration/prometheus.test.ts': 5,
  'integration/long-bodies.test.ts': 4,
  'cli/botble-reminders.test.ts': 4,
  'integration/claim-keeper.test.ts': 4,
  'cli/json-shapes.test.ts': 4,
  'integration/compiled-shapes.test.ts': 3,
  'integration/reminder-settings.test.ts': 3,
  'integration/forecast-show.test.ts': 3,
};

function secondsOf(test) {
  const relative = test.path.replace(/\\/g, '/').split('/test/').pop();
  return SECONDS[relative] ?? 0;
}

class LongestFirst extends Sequencer {
  sort(tests) {
    const ordered = super.sort(tests);
    // A stable sort: files with no entry keep jest's order, after those that have one.
    return Promise.resolve(ordered).then((list) => [...list].sort((a, b) => secondsOf(b) - secondsOf(a)));
  }
}

module.exports = LongestFirst;
