import { describe, expect, test } from '@jest/globals';
import { newRunId } from '../../src/storage/runs.repository.js';

describe('run ids sort by when the run started', () => {
  test('ids of the same millisecond keep the order they were made in; a later millisecond sorts after', () => {
    const ids = [newRunId(1_800_000_000_000), newRunId(1_800_000_000_000), newRunId(1_800_000_000_000), newRunId(1_800_000_000_001)];
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(4);
  });

  test('a clock that steps back never makes an id that sorts before an earlier one', () => {
    const first = newRunId(1_900_000_000_000);
    const second = newRunId(1_899_999_999_000);
    expect(second > first).toBe(true);
  });

  test('the layout of a UUID version 7', () => {
    expect(newRunId(1_950_000_000_000)).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
