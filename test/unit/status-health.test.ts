import { describe, expect, test } from '@jest/globals';
import { judgeHealth, type RunSummary } from '../../src/commands/status.js';

const NOW = new Date('2025-01-15T08:30:00Z');

function aRun(overrides: Partial<RunSummary> = {}): RunSummary {
  return {
    startedAt: '2025-01-15T08:00:00Z',
    finishedAt: '2025-01-15T08:00:05Z',
    status: 'succeeded',
    exitCode: 0,
    recorded: 1,
    delivered: 1,
    abandoned: 0,
    error: null,
    ...overrides,
  };
}

describe('status: the exit code a monitor acts on', () => {
  test('0 after a good run; 3 after abandoned deliveries; 1 after a failed or stopped run', () => {
    expect(judgeHealth({ now: NOW, lastFinished: aRun(), licenses: 5, settingProblems: [] }).exitCode).toBe(0);
    expect(judgeHealth({ now: NOW, lastFinished: aRun({ status: 'abandoned', exitCode: 3, abandoned: 2 }), licenses: 5, settingProblems: [] })).toEqual({
      exitCode: 3,
      reason: expect.stringContaining('abandoned 2 deliveries'),
    });
    // What deliveries retry --abandoned skips is named with what lets it go; the retry hint counts only the rest.
    const abandoned = (abandonedNow: number, abandonedUnsendable: NonNullable<Parameters<typeof judgeHealth>[0]['abandonedUnsendable']>) =>
      judgeHealth({
        now: NOW,
        lastFinished: aRun({ status: 'abandoned', exitCode: 3, abandoned: 4 }),
        licenses: 5,
        settingProblems: [],
        abandonedNow,
        abandonedUnsendable,
      }).reason;
    expect(
      abandoned(4, [
        { name: 'ops', abandoned: 1, reason: 'disabled' },
        { name: 'crm', abandoned: 1, reason: 'no longer defined' },
      ]),
    ).toBe(
      '4 deliveries abandoned and not re-sent (the last run, 2025-01-15T08:00:05Z, abandoned 4 deliveries): see "license-manager deliveries list --status abandoned", ' +
        're-send the other 2 with "license-manager deliveries retry --abandoned"; 1 delivery to ops, which is disabled: "license-manager endpoints enable ops" first, then retry to re-send it; ' +
        '1 delivery to crm, which is no longer defined: put it back in the config file to re-send it, or end it with "license-manager endpoints remove crm --force"',
    );
    expect(abandoned(2, [{ name: 'ops', abandoned: 2, reason: 'disabled' }])).not.toContain('deliveries retry --abandoned"');
    expect(judgeHealth({ now: NOW, lastFinished: aRun({ status: 'failed', exitCode: 1, error: 'boom' }), licenses: 5, settingProblems: [] }).reason).toBe(
      'the last run (2025-01-15T08:00:05Z) failed with exit code 1: boom',
    );
    expect(judgeHealth({ now: NOW, lastFinished: aRun({ status: 'stopped', exitCode: 1 }), licenses: 5, settingProblems: [] }).reason).toContain('was stopped');
  });

  test('1 when no run finished in the last 26 hours while licenses exist; exactly 26 hours is still fine', () => {
    const at26h = new Date(Date.parse('2025-01-15T08:00:05Z') + 26 * 3_600_000);
    expect(judgeHealth({ now: at26h, lastFinished: aRun(), licenses: 1, settingProblems: [] }).exitCode).toBe(0);
    expect(judgeHealth({ now: new Date(at26h.getTime() + 1000), lastFinished: aRun(), licenses: 1, settingProblems: [] }).exitCode).toBe(1);
    expect(judgeHealth({ now: NOW, lastFinished: undefined, licenses: 1, settingProblems: [] }).exitCode).toBe(1);
    // Nothing to watch yet: no licenses, no run.
    expect(judgeHealth({ now: NOW, lastFinished: undefined, licenses: 0, settingProblems: [] }).exitCode).toBe(0);
  });

  test('1 when a stored setting is invalid, even after a good run: the next run will refuse to start', () => {
    const health = judgeHealth({ now: NOW, lastFinished: aRun(), licenses: 1, settingProblems: [{ key: 'time-zone', problem: 'not a zone' }] });
    expect(health.exitCode).toBe(1);
    expect(health.reason).toContain('settings set time-zone <value>');
  });

  test('4: an endpoint whose deliveries have waited (deferred or parked) more than 24 hours; a run that exited 4 is no failure; 1 and 3 win', () => {
    const waiting = aRun({ status: 'waiting', exitCode: 4 });
    // Exit 0 (the receiver has not failed long enough), but never "succeeded": it says what waits, or that it went since.
    expect(judgeHealth({ now: NOW, lastFinished: waiting, licenses: 5, settingProblems: [] })).toEqual({
      exitCode: 0,
      reason: 'the last run finished at 2025-01-15T08:00:05Z (exit 4); what it left waiting on a failing receiver has been sent since',
    });
    const recent = judgeHealth({
      now: NOW,
      lastFinished: waiting,
      licenses: 5,
      settingProblems: [],
      failing: [{ name: 'crm', since: '2025-01-15T08:00:00Z', waiting: 2 }],
    });
    expect(recent.exitCode).toBe(0);
    expect(recent.reason).toMatch(
      /^the last run finished at 2025-01-15T08:00:05Z \(exit 4\); 2 deliveries wait on a failing receiver .*deliveries list --status deferred/,
    );
    const one = judgeHealth({
      now: NOW,
      lastFinished: waiting,
      licenses: 5,
      settingProblems: [],
      failing: [{ name: 'crm', since: '2025-01-15T08:00:00Z', waiting: 1 }],
    });
    expect(one.reason).toMatch(/; 1 delivery waits on a failing receiver \(/);
    const failing = [{ name: 'crm', since: '2025-01-14T08:00:00Z', waiting: 3 }];
    expect(judgeHealth({ now: NOW, lastFinished: waiting, licenses: 5, settingProblems: [], failing })).toEqual({
      exitCode: 4,
      reason: expect.stringContaining('endpoint crm has been failing since 2025-01-14T08:00:00Z (3 deliveries deferred): more than 24 hours'),
    });
    // 23 hours is not yet a day of failing.
    expect(
      judgeHealth({ now: NOW, lastFinished: waiting, licenses: 5, settingProblems: [], failing: [{ name: 'crm', since: '2025-01-14T09:30:00Z', waiting: 3 }] })
        .exitCode,
    ).toBe(0);
    expect(
      judgeHealth({ now: NOW, lastFinished: aRun({ status: 'abandoned', exitCode: 3, abandoned: 1 }), licenses: 5, settingProblems: [], failing }).exitCode,
    ).toBe(3);
    expect(judgeHealth({ now: NOW, lastFinished: aRun({ status: 'failed', exitCode: 1 }), licenses: 5, settingProblems: [], failing }).exitCode).toBe(1);
    // The list to look at names what waits: deferred ones, parked ones (a 410), or both.
    const gone = [{ name: 'crm', since: '2025-01-14T08:00:00Z', waiting: 3, parked: 3 }];
    const parkedOnly = judgeHealth({ now: NOW, lastFinished: waiting, licenses: 5, settingProblems: [], failing: gone }).reason;
    expect(parkedOnly).toMatch(
      /\(3 deliveries parked\): more than 24 hours\. Check the receiver; see "license-manager deliveries list --status parked"; "license-manager endpoints enable crm" sends them again once the receiver is back$/,
    );
    const both = [...gone, { name: 'erp', since: '2025-01-14T08:00:00Z', waiting: 1 }];
    expect(judgeHealth({ now: NOW, lastFinished: waiting, licenses: 5, settingProblems: [], failing: both }).reason).toMatch(
      /see "license-manager deliveries list --status deferred" and "license-manager deliveries list --status parked"; "license-manager endpoints enable crm" sends them again once the receiver is back$/,
    );
    expect(
      judgeHealth({ now: NOW, lastFinished: waiting, licenses: 5, settingProblems: [], failing: [{ ...gone[0]!, since: '2025-01-15T08:00:00Z' }] }).reason,
    ).toMatch(
      /; 3 deliveries wait on a failing receiver \("license-manager endpoints enable crm" sends the parked ones again; status exits 4 once .*: see "license-manager deliveries list --status parked"$/,
    );
    // Deferred and parked: later runs retry the deferred ones; one deferred alone is "it".
    const under = (failing: Array<{ name: string; since: string; waiting: number; parked?: number }>) =>
      judgeHealth({
        now: NOW,
        lastFinished: waiting,
        licenses: 5,
        settingProblems: [],
        failing: failing.map((entry) => ({ ...entry, since: '2025-01-15T08:00:00Z' })),
      }).reason;
    expect(under(both)).toContain('(later runs retry the deferred ones, "license-manager endpoints enable crm" sends the parked ones again;');
    expect(under([{ name: 'erp', since: '', waiting: 1 }])).toContain('1 delivery waits on a failing receiver (later runs retry it;');
    // An endpoint that answered since: its deferred ones wait for their next attempt, and nothing is failing.
    const recovered = [{ name: 'crm', waiting: 2 }];
    expect(judgeHealth({ now: NOW, lastFinished: waiting, licenses: 5, settingProblems: [], recovered })).toEqual({
      exitCode: 0,
      reason: expect.stringContaining('(exit 4); 2 deliveries to crm wait for their next attempt, the endpoint having answered since: the next run sends them'),
    });
    expect(judgeHealth({ now: NOW, lastFinished: aRun({}), licenses: 5, settingProblems: [], recovered: [{ name: 'crm', waiting: 1 }] })).toEqual({
      exitCode: 0,
      reason: expect.stringMatching(/^the last run finished at 2025-01-15T08:00:05Z; 1 delivery to crm waits for its next attempt, .* the next run sends it/),
    });
  });
});
