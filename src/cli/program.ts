// The commander program: the global flags, and each command registered from its module under ./commands/ (its
// flags, help, printer and exit status). Declaring it loads no command's implementation: each action imports its
// own when it runs, so `--help` stays cheap.
import { Command } from 'commander';
import { commandKit, type Session } from './command-kit.js';
import { registerDeliveries } from './commands/deliveries.js';
import { registerEndpoints } from './commands/endpoints.js';
import { registerLicenses } from './commands/licenses.js';
import { registerListen } from './commands/listen.js';
import { registerMigrate } from './commands/migrate.js';
import { registerProcessExpirations } from './commands/process-expirations.js';
import { registerSendTestEvent } from './commands/send-test-event.js';
import { registerSettings } from './commands/settings.js';
import { registerStatus } from './commands/status.js';
import { registerVerify } from './commands/verify.js';
import { packageVersion } from './version.js';

export function buildProgram(session: Session): Command {
  const { io } = session;
  const program = new Command('license-manager')
    .description('Sends signed webhooks for expiring, expired and past-update-support licenses.')
    .version(packageVersion(), '-V, --version')
    .option('-c, --config <file>', 'use this config file instead of looking for one in the current directory')
    .option('--json', 'machine-readable output on stdout, and nothing else there')
    .option('-q, --quiet', 'print nothing on success (problems still go to stderr)')
    .option('--no-color', 'no colour (NO_COLOR is honoured too)')
    .option('--verbose', 'show stack traces of unexpected errors')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout.write(text),
      writeErr: (text) => io.stderr.write(text),
    });

  // In the order `--help` lists them.
  const kit = commandKit(session);
  for (const register of [
    registerProcessExpirations,
    registerSendTestEvent,
    registerSettings,
    registerLicenses,
    registerEndpoints,
    registerDeliveries,
    registerListen,
    registerVerify,
    registerStatus,
    registerMigrate,
  ])
    register(program, kit);
  return program;
}
