// `flotilla get KIND [NAME…]`: objects as the server prints them (its Table,
// so columns are defined once, next to each kind), or as json, yaml or names;
// -w keeps printing changes from a watch that starts at the listed revision,
// so nothing between the list and the watch is missed.
import {
  type ApiClient, ApiClientError, ApiConnectionError, type Query, type Table, type TableColumn, apiVersionOf, resourcePath,
} from '../../agents/client/api.ts';
import { type KindDef, kindLabel, objectRef } from '../../agents/client/kinds.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { fieldSelectorToString } from '../../api/selectors.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, DEFAULT_NAMESPACE, NAMESPACE_OPTION, UsageError, kindAndNames, parseCommand, parseCount } from './args.ts';
import {
  type OutputFormat, StreamingTable, formatObjects, formatTable, hideManagedFields, parseOutputFormat, tableView, toJson, toYaml,
} from './printers.ts';
import { CliError, type Io, kindOrFail, processIo, reportError, runVerb, withClient } from './runtime.ts';

export const USAGE = `Display one or many resources.

Usage:
  flotilla get KIND[,KIND…] [NAME…] [-n NAMESPACE | -A] [-o wide|json|yaml|name] [-l SELECTOR] [--field-selector SELECTOR] [-w]
  flotilla get KIND/NAME [KIND/NAME…] [options]
  flotilla get events [-n NAMESPACE | -A] [--for KIND/NAME] [-w]

KIND is any name of a kind: pods, pod, po, Pod, deployments.apps, deploy…

Options:
  -n, --namespace            the namespace (default "default")
  -A, --all-namespaces       list across all namespaces (adds a NAMESPACE column)
  -o, --output               wide (more columns), json, yaml, or name (kind/name)
  -l, --selector             label selector, e.g. app=web,tier!=db or 'env in (a,b)'
      --field-selector       field selector, e.g. metadata.name=web,status.phase=Running
      --for                  (events only) the events about one object, e.g. pod/web or deployment.apps/web
  -w, --watch                after listing, print each change as it happens
      --no-headers           omit the header line of tables
      --chunk-size           list in pages of this many objects (default 500, 0 for one request)
      --show-managed-fields  keep metadata.managedFields in json and yaml output
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...NAMESPACE_OPTION,
  'all-namespaces': { type: 'boolean', short: 'A' },
  output: { type: 'string', short: 'o' },
  selector: { type: 'string', short: 'l' },
  'field-selector': { type: 'string' },
  watch: { type: 'boolean', short: 'w' },
  headers: { type: 'boolean', default: true },
  'chunk-size': { type: 'string' },
  'show-managed-fields': { type: 'boolean' },
  for: { type: 'string' },
} as const;

interface Request {
  kind: KindDef;
  names: string[];
}

interface Settings {
  ns: string;
  allNamespaces: boolean;
  format: OutputFormat;
  query: Query;
  headers: boolean;
  /** Prefix names with their kind (several kinds in one table set). */
  withKind: boolean;
  showManagedFields: boolean;
}

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('get', argv, OPTIONS), async ({ values, positionals }) => {
    const format = parseOutputFormat(values.output, ['table', 'wide', 'json', 'yaml', 'name']);
    const reqs: Request[] = kindAndNames(positionals, 'get').map((g) => ({ kind: kindOrFail(g.kind), names: g.names }));
    const allNamespaces = !!values['all-namespaces'];
    if (allNamespaces && reqs.some((r) => r.names.length)) {
      throw new UsageError('a resource cannot be retrieved by name across all namespaces', 'get');
    }
    const chunk = parseCount(values['chunk-size'], '--chunk-size') ?? 500;
    const fieldSelector = [values['field-selector'], values.for !== undefined ? eventsForSelector(reqs, values.for) : undefined].filter(Boolean).join(',') || undefined;
    const s: Settings = {
      ns: allNamespaces ? '' : values.namespace || DEFAULT_NAMESPACE,
      allNamespaces,
      format,
      query: { labelSelector: values.selector, fieldSelector, limit: chunk || undefined },
      headers: values.headers !== false,
      withKind: reqs.length > 1,
      showManagedFields: !!values['show-managed-fields'],
    };
    await withClient(io, values, async (client) => {
      if (values.watch) {
        if (reqs.length !== 1 || reqs[0].names.length > 1) {
          throw new UsageError('watch is only supported on individual resources and resource collections', 'get');
        }
        return watchOne(client, io, reqs[0], s);
      }
      if (format === 'json' || format === 'yaml' || format === 'name') return printObjects(client, io, reqs, s, format);
      return printTables(client, io, reqs, s);
    });
  });
}

/**
 * --for KIND/NAME: the field selector on the involved object that kubectl
 * events --for uses (kind, apiVersion and name; the namespace is the request's).
 */
export function eventsForSelector(reqs: readonly Request[], target: string): string {
  if (reqs.length !== 1 || reqs[0].kind.kind !== 'Event' || reqs[0].kind.group) throw new UsageError('--for is only supported with events', 'get');
  const slash = target.indexOf('/');
  if (slash <= 0 || slash === target.length - 1) throw new UsageError(`--for must be KIND/NAME (e.g. pod/web), not "${target}"`, 'get');
  const kind = kindOrFail(target.slice(0, slash));
  return fieldSelectorToString([
    { path: 'involvedObject.kind', op: '=', value: kind.kind },
    { path: 'involvedObject.apiVersion', op: '=', value: kind.group ? `${kind.group}/${kind.version}` : kind.version },
    { path: 'involvedObject.name', op: '=', value: target.slice(slash + 1) },
  ]);
}

function nsOf(kind: KindDef, s: Settings): string {
  return kind.namespaced ? s.ns : '';
}

function noneFound(kinds: KindDef[], s: Settings): string {
  return s.allNamespaces || !kinds.some((k) => k.namespaced) ? 'No resources found\n' : `No resources found in ${s.ns} namespace.\n`;
}

/** GET each named object as a Table (rows merged); missing ones are reported and skipped. */
async function namedTable(client: ApiClient, io: Io, r: Request, s: Settings): Promise<Table | undefined> {
  let merged: Table | undefined;
  for (const name of r.names) {
    try {
      const t = await client.table(resourcePath(r.kind, nsOf(r.kind, s), name));
      if (!merged) merged = t;
      else merged.rows.push(...t.rows);
    } catch (e) {
      reportError(io, e);
    }
  }
  return merged;
}

async function printTables(client: ApiClient, io: Io, reqs: Request[], s: Settings): Promise<void> {
  let printed = 0;
  let anyNamed = false;
  for (const r of reqs) {
    anyNamed ||= r.names.length > 0;
    const t = r.names.length
      ? await namedTable(client, io, r, s)
      : await client.table(resourcePath(r.kind, nsOf(r.kind, s)), s.query);
    if (!t || !t.rows.length) continue;
    const v = tableView(t, {
      wide: s.format === 'wide',
      withNamespace: s.allNamespaces && r.kind.namespaced,
      namePrefix: s.withKind ? kindLabel(r.kind) : undefined,
    });
    // Tables of several kinds are separated by a blank line, as kubectl does.
    if (printed++) io.out('\n');
    io.out(formatTable(s.headers ? v.header : undefined, v.rows));
  }
  if (!printed && !anyNamed) io.err(noneFound(reqs.map((r) => r.kind), s));
}

/**
 * An object as json/yaml print it: with apiVersion and kind (list items lack
 * them on the wire), without managedFields unless asked for.
 */
function forDisplay(kind: KindDef, o: KubeObject, s: Settings): KubeObject {
  const typed = { apiVersion: apiVersionOf(kind), kind: kind.kind, ...o };
  return s.showManagedFields ? typed : hideManagedFields(typed);
}

async function printObjects(client: ApiClient, io: Io, reqs: Request[], s: Settings, format: 'json' | 'yaml' | 'name'): Promise<void> {
  const objs: { kind: KindDef; obj: KubeObject }[] = [];
  for (const r of reqs) {
    const ns = nsOf(r.kind, s);
    if (r.names.length) {
      for (const name of r.names) {
        try {
          objs.push({ kind: r.kind, obj: forDisplay(r.kind, await client.get(resourcePath(r.kind, ns, name)), s) });
        } catch (e) {
          reportError(io, e);
        }
      }
    } else {
      const list = await client.list(resourcePath(r.kind, ns), s.query);
      for (const o of list.items) objs.push({ kind: r.kind, obj: forDisplay(r.kind, o, s) });
    }
  }
  const named = reqs.some((r) => r.names.length);
  if (!objs.length) {
    // As kubectl: an empty List for json/yaml (scripts parse it), nothing at all for names.
    if (format !== 'name' && !named) io.out(formatObjects([], format, false, () => ''));
    return;
  }
  const single = reqs.length === 1 && reqs[0].names.length === 1;
  const kindOf = new Map(objs.map((x) => [x.obj, x.kind]));
  io.out(formatObjects(objs.map((x) => x.obj), format, single, (o) => objectRef(kindOf.get(o)!, String(o.metadata?.name ?? ''))));
}

/**
 * get -w: the current state, then every change from that revision on. The
 * watch resumes from the last revision seen when a server goes away, so a
 * failover shows up as nothing more than a pause.
 */
async function watchOne(client: ApiClient, io: Io, r: Request, s: Settings): Promise<void> {
  const ns = nsOf(r.kind, s);
  const name = r.names[0];
  const query: Query = { labelSelector: s.query.labelSelector, fieldSelector: s.query.fieldSelector };
  if (name) query.fieldSelector = [`metadata.name=${name}`, s.query.fieldSelector].filter(Boolean).join(',');
  const tableMode = s.format === 'table' || s.format === 'wide';
  const viewOpts = { wide: s.format === 'wide', withNamespace: s.allNamespaces && r.kind.namespaced };

  let rv: string;
  let columns: TableColumn[] = [];
  let printer: StreamingTable | undefined;
  const printObj = (o: KubeObject) => {
    const obj = forDisplay(r.kind, o, s);
    if (s.format === 'name') io.out(`${objectRef(r.kind, String(obj.metadata?.name ?? ''))}\n`);
    else if (s.format === 'json') io.out(toJson(obj));
    else io.out(`---\n${toYaml(obj)}`);
  };

  if (tableMode) {
    const t = name
      ? await client.table(resourcePath(r.kind, ns, name))
      : await client.table(resourcePath(r.kind, ns), { ...query, limit: s.query.limit });
    rv = String(t.metadata?.resourceVersion ?? '');
    columns = t.columnDefinitions;
    const v = tableView(t, viewOpts);
    printer = new StreamingTable(s.headers ? v.header : undefined, v.rows);
    io.out(printer.start(v.rows));
  } else if (name) {
    const o = await client.get(resourcePath(r.kind, ns, name));
    rv = String(o.metadata?.resourceVersion ?? '');
    printObj(o);
  } else {
    const list = await client.list(resourcePath(r.kind, ns), { ...query, limit: s.query.limit });
    rv = String(list.metadata.resourceVersion ?? '');
    list.items.forEach(printObj);
  }

  for (;;) {
    try {
      await client.watch<KubeObject | Table>(resourcePath(r.kind, ns), { ...query, resourceVersion: rv, allowWatchBookmarks: 'true' }, (ev) => {
        const o = ev.object;
        if (ev.type === 'BOOKMARK') {
          rv = String(o.metadata?.resourceVersion ?? rv);
          return;
        }
        if (o.kind === 'Table') {
          const t = o as Table;
          if (t.columnDefinitions?.length) columns = t.columnDefinitions;
          rv = String(t.metadata?.resourceVersion ?? t.rows?.[0]?.object?.metadata?.resourceVersion ?? rv);
          if (!printer) printer = new StreamingTable(undefined);
          for (const row of tableView(t, viewOpts, columns).rows) io.out(printer.row(row));
          return;
        }
        rv = String((o as KubeObject).metadata?.resourceVersion ?? rv);
        printObj(o as KubeObject);
      }, undefined, { table: tableMode });
      // The server ended the stream (its timeout): carry on from where it stopped.
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 410) {
        throw new CliError(`the watch fell too far behind (resourceVersion ${rv} is no longer available); run the command again`);
      }
      if (!(e instanceof ApiConnectionError)) throw e;
      await new Promise((res) => setTimeout(res, 500));
    }
  }
}
