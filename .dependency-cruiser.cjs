// The import boundaries of src/ and migrations/, checked by `npm run lint` (dependency-cruiser).
// The direction, lowest first:
//   src/*.ts (shared: time, clock, errors, …) ← webhooks (the wire) ← expirations (the license rules)
//   ← sql (the dialects; migrations use it too) ← storage ← config ← import, delivery, monitoring ← commands ← cli
// A folder may import a folder to its left, never one to its right. ARCHITECTURE.md explains each folder.
const folder = (name) => `^src/${name}/`;
const anyOf = (...names) => `^src/(${names.join('|')})/`;

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'A module cycle: two modules that cannot be read one without the other.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'shared-is-a-leaf',
      severity: 'error',
      comment: 'The shared modules at the top of src/ (time, clock, errors, plural, …) are used by every folder and use none.',
      from: { path: '^src/[^/]+\\.ts$' },
      to: { path: '^src/[^/]+/' },
    },
    {
      name: 'wire-knows-no-rules',
      severity: 'error',
      comment: 'src/webhooks is the wire format (payloads, headers, signatures, event types): it knows nothing of licenses, storage or commands.',
      from: { path: folder('webhooks') },
      to: { path: anyOf('expirations', 'sql', 'storage', 'import', 'delivery', 'monitoring', 'commands', 'cli') },
    },
    {
      name: 'rules-are-pure',
      severity: 'error',
      comment: 'src/expirations is the license domain: pure rules that read no database, config or command.',
      from: { path: folder('expirations') },
      to: { path: anyOf('sql', 'storage', 'config', 'import', 'delivery', 'monitoring', 'commands', 'cli') },
    },
    {
      name: 'storage-serves',
      severity: 'error',
      comment: 'src/storage reads and writes tables for the layers above it and calls none of them.',
      from: { path: folder('storage') },
      to: { path: anyOf('config', 'import', 'delivery', 'monitoring', 'commands', 'cli', 'webhooks') },
    },
    {
      name: 'config-below-commands',
      severity: 'error',
      from: { path: folder('config') },
      to: { path: anyOf('import', 'delivery', 'monitoring', 'commands', 'cli') },
    },
    {
      name: 'engines-below-commands',
      severity: 'error',
      comment: 'Importing, delivering and monitoring are used by commands; they never call a command or the CLI.',
      from: { path: anyOf('import', 'delivery', 'monitoring') },
      to: { path: anyOf('commands', 'cli') },
    },
    {
      name: 'commands-below-cli',
      severity: 'error',
      comment: 'Commands return results; printing them and exit codes are the CLI edge.',
      from: { path: folder('commands') },
      to: { path: folder('cli') },
    },
    {
      name: 'cli-through-commands',
      severity: 'error',
      comment: 'The CLI edge reaches the database only through commands: it imports no storage module.',
      from: { path: folder('cli') },
      to: { path: folder('storage') },
    },
    {
      name: 'sql-dialects-are-a-leaf',
      severity: 'error',
      comment:
        'src/sql holds what differs between SQLite, PostgreSQL and MySQL (one file per dialect): storage and migrations use it, it uses no other folder.',
      from: { path: folder('sql') },
      to: { path: '^(src/[^/]+/|migrations/)', pathNot: folder('sql') },
    },
    {
      name: 'migrations-only-use-the-dialects',
      severity: 'error',
      comment: 'A migration asks its dialect (src/sql) and nothing else of src/: storage applies the migrations, so anything of storage would be a cycle.',
      from: { path: '^migrations/' },
      to: { path: '^src/', pathNot: folder('sql') },
    },
    {
      name: 'exit-codes-at-the-edge',
      severity: 'error',
      comment:
        'Exit codes and the errors that carry them (src/errors.ts) are decided by commands and the CLI: the layers below throw typed errors that name what is wrong (storage: storage-refusal.ts; the driver errors: sql/db-errors.ts), and commands/database-messages.ts words them. The runs table reads its codes from src/run-outcome.ts.',
      from: { path: anyOf('webhooks', 'expirations', 'sql', 'storage', 'delivery') },
      to: { path: '^src/errors\\.ts$' },
    },
    {
      name: 'no-tests-in-production',
      severity: 'error',
      from: { path: '^(src|migrations|bin)/' },
      to: { path: '^(test|scripts)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
  },
};
