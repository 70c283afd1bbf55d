// Workers whose clocks disagree by two minutes (libfaketime: one 60 s ahead, one 60 s behind) share one
// server database: leases on the database server's clock keep each event sent once.
import { expect, test } from '@jest/globals';
import { startCli } from '../helpers/project.js';
import { expiredLicenses, forEachDialect, receiverFor } from '../helpers/workspace.js';
import { faketimeProblem, faketimeWorks } from '../helpers/faketime.js';

const NOW = '2025-01-15T08:00:00Z';
const EVENTS = 200;

forEachDialect(
  'two workers, one clock 60 s ahead and one 60 s behind',
  ({ dialect, project }) => {
    const skewed = faketimeWorks ? test : test.skip;
    if (!faketimeWorks)
      test.skip(`(skipped: libfaketime is not installed or does not work here: apt-get install faketime; ${faketimeProblem})`, () => undefined);
    skewed(
      'each event is sent once, and each worker warns that its clock is off',
      async () => {
        // Slow answers keep both workers sending at once, each holding claims the other can see.
        const receiver = await receiverFor(() => ({ delayMs: 30, status: 200 }));
        const ws = await project({ receiver, config: { webhooks: { enabled: true, concurrency: 4 } }, licenses: expiredLicenses(EVENTS) });
        const run = (offset: string) => startCli(['process-expirations', '--now', NOW, '--json'], ws.dir, { command: ['faketime', '-f', offset] });
        const [ahead, behind] = await Promise.all([run('+60s').done, run('-60s').done]);
        expect([ahead.code, behind.code]).toEqual([0, 0]);
        expect(ahead.stderr).toMatch(/^warning: this host's clock is 6\d\.\d s ahead of the database server's: delivery leases use the database's clock/);
        expect(behind.stderr).toMatch(/^warning: this host's clock is 6\d\.\d s behind the database server's/);

        const ids = receiver.requests.map((request) => String(request.headers['x-webhook-id']));
        const duplicates = ids.length - new Set(ids).size;
        console.log(
          `${dialect}: ${ids.length} requests for ${EVENTS} events, ${duplicates} duplicates; ahead delivered ${JSON.parse(ahead.stdout).delivered}, behind ${JSON.parse(behind.stdout).delivered}`,
        );
        expect(new Set(ids).size).toBe(EVENTS);
        expect(duplicates).toBe(0);
      },
      120_000,
    );
  },
  { servers: true },
);
