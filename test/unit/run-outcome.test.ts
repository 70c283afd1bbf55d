import { expect, test } from '@jest/globals';
import { usageError } from '../../src/errors.js';
import { NOTHING_WRITTEN_EXIT_CODE, ranToTheEnd, refusedRunOutcome, runOutcome, SUCCEEDED_EXIT_CODE } from '../../src/run-outcome.js';

// The one exit-code rule: the CLI, the runs table and status's verdict all read it here.
test('the codes of a run that got to its end are those runOutcome gives; any other, or none, is not', () => {
  const ends = [runOutcome({ abandoned: 0 }), runOutcome({ abandoned: 1 }), runOutcome({ abandoned: 0, waiting: 2 })];
  expect(ends.map((end) => [end.status, end.exitCode])).toEqual([
    ['succeeded', SUCCEEDED_EXIT_CODE],
    ['abandoned', 3],
    ['waiting', 4],
  ]);
  for (const end of ends) expect(ranToTheEnd(end.exitCode)).toBe(true);
  for (const end of [runOutcome({ abandoned: 0, stopped: true }), runOutcome({ abandoned: 0, locked: 1 })]) expect(ranToTheEnd(end.exitCode)).toBe(false);
  expect(ranToTheEnd(2)).toBe(false);
  expect(ranToTheEnd(null)).toBe(false);
});

test('a refused run: the code its refusal carries, 2 for any other error; the runs row skips that code', () => {
  expect(refusedRunOutcome(usageError('no webhook URL'))).toEqual({ status: 'refused', exitCode: 2 });
  expect(refusedRunOutcome(new Error('the endpoints table could not be read'))).toEqual({ status: 'refused', exitCode: 2 });
  expect(NOTHING_WRITTEN_EXIT_CODE).toBe(refusedRunOutcome(usageError('x')).exitCode);
});
