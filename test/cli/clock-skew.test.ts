// Workers whose clocks disagree by two minutes (libfaketime: one 60 s ahead, one 60 s behind) share one
// server database: leases on the database server's clock keep each event sent once.
import { afterAll, afterEach, beforeAll, describe, expect, test } from '@jest/globals';
import { projectWithEvents, startCli } from '../helpers/project.js';
import { startReceiver, type Receiver } from '../helpers/receiver.js';
import { createServerDatabase, testDialects, type ServerDatabase, type ServerDialect } from '../helpers/servers.js';
import { workspace } from '../helpers/workspace.js';
import { faketimeWorks } from '../helpers/faketime.js';

const NOW = '2025-01-15T08:00:00Z';
const EVENTS = 200;
const servers = testDialects().filter((dialect): dialect is ServerDialect => dialect !== 'sqlite');

const receivers: Receiver[] = [];
const children: Array<ReturnType<typeof startCli>> = [];
afterEach(async () => {
  for (const child of children.splice(0)) if (child.child.exitCode === null && child.child.signalCode === null) child.child.kill('SIGKILL');
  for (const receiver of receivers.splice(0)) await receiver.close();
});

if (servers.length === 0) test.skip('clock skew between workers (no server answered)', () => undefined);

describe.each(servers)('%s: two workers, one clock 60 s ahead and one 60 s behind', (dialect) => {
  let server: ServerDatabase;
  beforeAll(async () => {
    server = await createServerDatabase(dialect);
  });
  afterAll(async () => {
    await server.drop();
  });

  const skewed = faketimeWorks ? test : test.skip;
  if (!faketimeWorks) test.skip('(skipped: libfaketime is not installed or does not work here: apt-get install faketime)', () => undefined);
  skewed(
    'each event is sent once, and each worker warns that its clock is off',
    async () => {
      // Slow answers keep both workers sending at once, each holding claims the other can see.
      const receiver = await startReceiver(() => ({ delayMs: 30, status: 200 }));
      receivers.push(receiver);
      const ws = await projectWithEvents((config) => workspace(config, {}, server), EVENTS, { url: receiver.url, concurrency: 4 });
      const run = (offset: string) => {
        const child = startCli(['process-expirations', '--now', NOW, '--json'], ws.dir, { command: ['faketime', '-f', offset] });
        children.push(child);
        return child;
      };
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
});
