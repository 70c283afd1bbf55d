import {
  OperationNodeTransformer,
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

/**
 * The longest index name the migrations create, `webhook_deliveries_status_endpoint_next_attempt` (0009): index names
 * carry the table prefix too, so a server's limit on identifiers bounds the prefix (SqlDialect.maxTablePrefix).
 */
export const LONGEST_INDEX_NAME = 47;

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
