import fs from 'node:fs';

/**
 * A number a test measured (duplicates after a kill, a skipped optional check): collected in the file the
 * summary reporter names, which prints them once after the run instead of console noise in jest's output.
 */
export function measure(line: string): void {
  const file = process.env.LICENSE_MANAGER_TEST_MEASURES;
  if (file) fs.appendFileSync(file, `${line}\n`);
  else process.stdout.write(`measured: ${line}\n`);
}
