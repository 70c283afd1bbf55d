// `migrate`: bring the database schema up to date.
import type { Command } from 'commander';
import type { CommandKit } from '../command-kit.js';
import { examples } from '../help.js';

export function registerMigrate(program: Command, kit: CommandKit): void {
  const { withDatabase } = kit;
  program
    .command('migrate')
    .description('bring the database schema up to date (on SQLite other commands do this on their own; on PostgreSQL or MySQL only migrate does)')
    .addHelpText(
      'after',
      examples(
        'license-manager migrate',
        'LICENSE_MANAGER_DB=/var/lib/license-manager/db.sqlite license-manager migrate',
        "LICENSE_MANAGER_DB='postgres://app:secret@db:5432/licenses' license-manager migrate   # creates the tables on a server",
      ),
    )
    .action((_options: unknown, command: Command) =>
      withDatabase(
        command,
        async (context, out) => {
          const applied = context.migrationsApplied;
          if (out.options.json) out.json({ database: context.databaseLabel, applied, upToDate: true });
          else if (applied.length === 0) out.info(`Database ${context.databaseLabel} was already up to date.`);
          else out.info(`Database ${context.databaseLabel}: applied ${applied.join(', ')}; it is up to date.`);
        },
        { migrate: true },
      ),
    );
}
