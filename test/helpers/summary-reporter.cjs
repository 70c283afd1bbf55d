// Prints what tests measured (test/helpers/measure.ts), then one plain closing line CI can read:
// "jest: N passed, M failed" (suites that failed to load count as failures).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

class SummaryReporter {
  constructor() {
    // Set before the workers start, so they inherit it.
    this.measures = path.join(os.tmpdir(), `license-manager-measures-${process.pid}.txt`);
    fs.rmSync(this.measures, { force: true });
    process.env.LICENSE_MANAGER_TEST_MEASURES = this.measures;
  }

  onRunComplete(_contexts, results) {
    if (fs.existsSync(this.measures)) {
      const lines = fs.readFileSync(this.measures, 'utf8').trim().split('\n').filter(Boolean);
      fs.rmSync(this.measures, { force: true });
      if (lines.length > 0) process.stdout.write(`\nmeasured:\n${lines.map((line) => `  ${line}`).join('\n')}\n`);
    }
    const failed = results.numFailedTests + results.numRuntimeErrorTestSuites;
    process.stdout.write(`\njest: ${results.numPassedTests} passed, ${failed} failed, ${results.numPendingTests} skipped\n`);
  }
}
module.exports = SummaryReporter;
