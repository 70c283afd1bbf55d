// Removes the folder global-setup.cjs made for this run.
const fs = require('node:fs');

module.exports = async function globalTeardown() {
  const dir = process.env.LICENSE_MANAGER_TEST_RUN_DIR;
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
};
