// Output like kubectl's: aligned tables (from the server's meta.k8s.io Table
// or from rows a command builds itself), JSON, YAML and `kind/name`. Kept free
// of I/O and of any one verb so that get, apply, events, logs and rollout all
// print the same way.
import YAML from 'yaml';
import type { Table, TableColumn } from '../../agents/client/api.ts';
import type { KubeObject } from '../../api/schema/types.ts';
import { UsageError } from './args.ts';

export type OutputFormat = 'table' | 'wide' | 'json' | 'yaml' | 'name';

/** Checks -o against what a verb supports; undefined means the verb's default. */
export function parseOutputFormat(v: string | undefined, allowed: readonly OutputFormat[], dflt: OutputFormat = 'table'): OutputFormat {
  if (v === undefined || v === '') return dflt;
  if ((allowed as readonly string[]).includes(v) && v !== 'table') return v as OutputFormat;
  throw new UsageError(
    `unable to match a printer suitable for the output format "${v}", allowed formats are: ${allowed.filter((a) => a !== 'table').join(',')}`,
  );
}

// ------------------------------------------------------------------ tables

/**
 * kubectl's tabwriter settings (minwidth 6, padding 3): every column but the
 * last is padded to its widest cell plus three spaces, and to at least six.
 */
const MIN_WIDTH = 6;
const PADDING = 3;

/** A cell as kubectl prints it: nothing → <none>, objects as JSON. */
export function formatCell(v: unknown): string {
  if (v === null || v === undefined) return '<none>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}

/** Column widths (cell text plus padding) for a header and rows. */
export function columnWidths(rows: readonly (readonly string[])[]): number[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? MIN_WIDTH, c.length + PADDING);
    });
  }
  return widths;
}

/** One line of an aligned table; the last cell is not padded (no trailing spaces). */
export function formatRow(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? MIN_WIDTH))).join('').trimEnd();
}

/** An aligned table with its header, each line ending in a newline. */
export function formatTable(header: readonly string[] | undefined, rows: readonly (readonly string[])[]): string {
  const all = header ? [header, ...rows] : rows;
  const widths = columnWidths(all);
  return all.map((r) => `${formatRow(r, widths)}\n`).join('');
}

/**
 * A table printed incrementally (get -w): rows that arrive later keep the
 * alignment of the first screenful, growing a column only when a cell needs it.
 */
export class StreamingTable {
  private widths: number[];

  constructor(private readonly header: readonly string[] | undefined, first: readonly (readonly string[])[] = []) {
    this.widths = columnWidths(header ? [header, ...first] : first);
  }

  /** The header and the first rows. */
  start(rows: readonly (readonly string[])[]): string {
    const lines = this.header ? [this.header, ...rows] : rows;
    return lines.map((r) => `${formatRow(r, this.widths)}\n`).join('');
  }

  row(cells: readonly string[]): string {
    cells.forEach((c, i) => {
      this.widths[i] = Math.max(this.widths[i] ?? MIN_WIDTH, c.length + PADDING);
    });
    return `${formatRow(cells, this.widths)}\n`;
  }
}

export interface TableViewOptions {
  /** Show priority > 0 columns (-o wide). */
  wide?: boolean;
  /** Prepend NAMESPACE from each row's object (-A). */
  withNamespace?: boolean;
  /** Prefix names with "kind/" (when several kinds are printed together). */
  namePrefix?: string;
}

export interface TableView {
  header: string[];
  rows: string[][];
}

/** The columns of a Table that a view shows, by index. */
export function visibleColumns(cols: readonly TableColumn[], wide: boolean): number[] {
  return cols.map((c, i) => ({ c, i })).filter(({ c }) => wide || !c.priority).map(({ i }) => i);
}

/** Header and rows of a server Table, as kubectl lays them out. */
export function tableView(t: Pick<Table, 'columnDefinitions' | 'rows'>, opts: TableViewOptions = {}, cols = t.columnDefinitions): TableView {
  const show = visibleColumns(cols, !!opts.wide);
  const nameIdx = cols.findIndex((c) => c.format === 'name');
  const header = show.map((i) => cols[i].name.toUpperCase());
  if (opts.withNamespace) header.unshift('NAMESPACE');
  const rows = (t.rows ?? []).map((r) => {
    const cells = show.map((i) => {
      const s = formatCell(r.cells[i]);
      return i === nameIdx && opts.namePrefix ? `${opts.namePrefix}/${s}` : s;
    });
    if (opts.withNamespace) cells.unshift(String(r.object?.metadata?.namespace ?? ''));
    return cells;
  });
  return { header, rows };
}

// ------------------------------------------------------------ json / yaml

/** Keys sorted at every level, as kubectl prints unstructured objects. */
export function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  }
  return v;
}

export function toJson(v: unknown): string {
  return `${JSON.stringify(sortKeys(v), null, 4)}\n`;
}

export function toYaml(v: unknown): string {
  // kubectl's YAML: sequences not indented under their key, no line folding,
  // and YAML 1.1 quoting (timestamps, yes/no/on/off), so that 1.1 parsers
  // (PyYAML, go-yaml v2) read every string back as a string.
  return YAML.stringify(sortKeys(v), { indentSeq: false, lineWidth: 0, minContentWidth: 0, version: '1.1' });
}

/** The object without metadata.managedFields, which kubectl hides unless --show-managed-fields. */
export function hideManagedFields<T extends { metadata?: Record<string, unknown> }>(o: T): T {
  if (!o.metadata || !('managedFields' in o.metadata)) return o;
  const { managedFields: _hidden, ...metadata } = o.metadata;
  return { ...o, metadata };
}

/** Several objects as kubectl prints them: a v1 List. */
export function asList(items: KubeObject[], resourceVersion = ''): KubeObject {
  return { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion }, items };
}

/**
 * Objects in json, yaml or name format: one object alone when `single`
 * (`get KIND NAME`), otherwise a List (json/yaml) or one name per line.
 */
export function formatObjects(objs: KubeObject[], format: 'json' | 'yaml' | 'name', single: boolean, nameOf: (o: KubeObject) => string): string {
  if (format === 'name') return objs.map((o) => `${nameOf(o)}\n`).join('');
  const v = single && objs.length === 1 ? objs[0] : asList(objs);
  return format === 'json' ? toJson(v) : toYaml(v);
}
