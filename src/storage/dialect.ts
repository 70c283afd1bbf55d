import {
  MysqlAdapter,
  OperationNodeTransformer,
  PostgresAdapter,
  type CreateIndexNode,
  type DropIndexNode,
  type Kysely,
  type KyselyPlugin,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type QueryResult,
  type RootOperationNode,
  type TableNode,
  type UnknownRow,
} from 'kysely';
import { IdentifierNode, SchemableIdentifierNode } from 'kysely';

export type SqlDialect = 'sqlite' | 'postgres' | 'mysql';

/** Which SQL the database behind `db` speaks; works on a transaction too (it shares the executor's adapter). */
export function dialectOf(db: Kysely<any>): SqlDialect {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof PostgresAdapter) return 'postgres';
  if (adapter instanceof MysqlAdapter) return 'mysql';
  return 'sqlite';
}

/** The tables the migrations create: only these are renamed, so another application's tables and our aliases are left alone. */
const OWN_TABLES: ReadonlySet<string> = new Set([
  'licenses',
  'settings',
  'webhook_deliveries',
  'webhook_attempts',
  'runs',
  'botble_license_states',
  'endpoints',
  'endpoint_secrets',
  'endpoint_headers',
  'endpoint_states',
]);

class PrefixTransformer extends OperationNodeTransformer {
  constructor(private readonly prefix: string) {
    super();
  }

  private rename(identifier: IdentifierNode): IdentifierNode {
    return OWN_TABLES.has(identifier.name) ? IdentifierNode.create(this.prefix + identifier.name) : identifier;
  }

  // A TableNode is a table in FROM/INTO/JOIN/DDL or the table part of a column reference (`licenses.id`);
  // an alias (`licenses as l`, then `l.id`) is not one of our names and stays as written.
  protected override transformTable(node: TableNode): TableNode {
    const renamed = this.rename(node.table.identifier);
    if (renamed === node.table.identifier) return node;
    return { ...node, table: { ...node.table, identifier: renamed } };
  }

  // Index names share one namespace per schema on PostgreSQL: prefix them as well.
  protected override transformCreateIndex(node: CreateIndexNode, queryId?: Parameters<OperationNodeTransformer['transformNode']>[1]): CreateIndexNode {
    const transformed = super.transformCreateIndex(node, queryId);
    return { ...transformed, name: IdentifierNode.create(this.prefix + transformed.name.name) };
  }

  protected override transformDropIndex(node: DropIndexNode, queryId?: Parameters<OperationNodeTransformer['transformNode']>[1]): DropIndexNode {
    const transformed = super.transformDropIndex(node, queryId);
    const name = transformed.name.identifier.name;
    return { ...transformed, name: SchemableIdentifierNode.create(this.prefix + name) };
  }
}

/**
 * Puts `database.tablePrefix` in front of our table (and index) names in every query, raw `sql` with
 * `sql.table(...)` included, so the tables can live inside another application's database.
 */
export class TablePrefixPlugin implements KyselyPlugin {
  private readonly transformer: PrefixTransformer;

  constructor(readonly prefix: string) {
    this.transformer = new PrefixTransformer(prefix);
  }

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.transformer.transformNode(args.node, args.queryId);
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

/** The table prefix `db` was opened with ('' when none). */
export function tablePrefixOf(db: Kysely<any>): string {
  const plugin = db.getExecutor().plugins.find((candidate): candidate is TablePrefixPlugin => candidate instanceof TablePrefixPlugin);
  return plugin?.prefix ?? '';
}

/** The driver's error code (`SQLITE_BUSY`, `23505`, `ER_DUP_ENTRY`, `ECONNRESET`), or '' when there is none. */
export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** The error's message, also for errors made in another realm (which fail `instanceof Error`). */
export function messageOf(error: unknown): string {
  const message = (error as { message?: unknown } | null)?.message;
  // Our messages add their own full stop: "… from backend.. Is a server listening" reads as a typo.
  return (typeof message === 'string' ? message : String(error)).replace(/\.+\s*$/, '');
}

/** A unique, check or foreign-key constraint refused the write, in any dialect's words. */
export function isConstraintViolation(error: unknown): boolean {
  const code = errorCode(error);
  return (
    code.startsWith('SQLITE_CONSTRAINT') ||
    /^23[0-9A-Z]{3}$/.test(code) ||
    ['ER_DUP_ENTRY', 'ER_CONSTRAINT_FAILED', 'ER_CHECK_CONSTRAINT_VIOLATED', 'ER_NO_REFERENCED_ROW_2'].includes(code)
  );
}

// InnoDB picks a victim when concurrent INSERT IGNOREs meet on the same unique keys; PostgreSQL may too. A lock
// wait that timed out (lock_timeout, innodb_lock_wait_timeout) is tried again as well: its holder may be gone.
const DEADLOCK_CODES = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT', '40P01', '40001', '55P03']);
const DEADLOCK_RETRIES = 5;

/**
 * Runs a transaction again when the server chose it as a deadlock victim (its work was rolled back, so a
 * second try is safe). Several workers recording the same events at once is the expected case.
 */
export async function retryOnDeadlock<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await fn();
    } catch (error) {
      const code = errorCode(error);
      if (!DEADLOCK_CODES.has(code) || attempt >= DEADLOCK_RETRIES) throw error;
      await new Promise((resolve) => setTimeout(resolve, 10 * attempt + Math.random() * 20 * attempt));
    }
  }
}
