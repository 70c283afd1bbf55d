import { expect, test } from '@jest/globals';
import { databaseLeaseClock } from '../../src/delivery/lease-clock.js';
import { forEachDialect } from '../helpers/workspace.js';

// The offset to the database server's clock is measured with a query: server dialects only (SQLite uses the host's clock).
forEachDialect(
  "the lease clock's measurements of the database server's clock",
  ({ workspace }) => {
    test('one during which the run was paused (60 s between asking and reading) is not used; the next quick one is', async () => {
      const ws = workspace();
      await ws.run(async ({ db }) => {
        let hostMs = Date.parse('2025-01-15T08:00:00Z');
        const host = { now: () => new Date(hostMs) };
        // The host's clock stands still but for the pause: 60 s pass while the second measurement's answer waits.
        let answers = 0;
        let offset = () => 0;
        // The offset as the third measurement's answer comes back, before it is used: what the second one left.
        let beforeThird: number | undefined;
        const pausing = db.withPlugin({
          transformQuery: ({ node }) => node,
          transformResult: ({ result }) => {
            answers += 1;
            if (answers === 2) hostMs += 60_000;
            if (answers === 3) beforeThird = offset();
            return Promise.resolve(result);
          },
        });
        const clock = await databaseLeaseClock(pausing, host, 50);
        try {
          offset = () => clock.now().getTime() - host.now().getTime();
          const first = offset();
          const until = async (done: () => boolean) => {
            for (let waited = 0; !done() && waited < 5000; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
          };
          // The second measurement (paused) was ignored: half its 60 s round trip would have moved the offset by 30 s.
          await until(() => beforeThird !== undefined);
          expect(Math.abs(beforeThird! - first)).toBeLessThan(1000);
          // The third is quick and used: the host's clock is now 60 s further from the database's.
          await until(() => Math.abs(offset() - (first - 60_000)) < 1000);
          expect(Math.abs(offset() - (first - 60_000))).toBeLessThan(1000);
        } finally {
          clock.close();
        }
      });
    });
  },
  { servers: true },
);
