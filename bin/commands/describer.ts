// Human-readable descriptions, in the layout of `kubectl describe`: the
// object's metadata, a summary of the main kinds (pods, workloads, services,
// nodes, namespaces), spec and status as an indented tree (what kubectl's
// generic describer does for any kind), conditions as a table, and at the
// bottom the Events about the object. Pure: an object and its events in,
// text out.
import { humanDuration } from '../../api/kinds/index.ts';
import type { KubeObject } from '../../api/schema/types.ts';

type Obj = Record<string, unknown>;
const rec = (v: unknown): Obj | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : undefined);
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export interface CoreEventLike extends KubeObject {
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  firstTimestamp?: string | null;
  lastTimestamp?: string | null;
  eventTime?: string | null;
  series?: { count?: number; lastObservedTime?: string } | null;
  source?: { component?: string; host?: string };
  reportingComponent?: string;
}

/** Lines of "Key:  value", aligned like kubectl's tabwriter output. */
class Writer {
  private lines: [number, string, string | undefined][] = [];

  /** A line at `depth` (2 spaces each): "Key:" with an optional value. */
  line(depth: number, key: string, value?: string): void {
    this.lines.push([depth, key, value]);
  }

  text(): string {
    // Values of consecutive lines at one depth start in one column, as a tabwriter does.
    const out: string[] = [];
    let i = 0;
    while (i < this.lines.length) {
      const depth = this.lines[i][0];
      let j = i;
      while (j < this.lines.length && this.lines[j][0] === depth) j++;
      const width = Math.max(...this.lines.slice(i, j).filter((l) => l[2] !== undefined).map((l) => l[1].length), 0);
      for (const [d, k, v] of this.lines.slice(i, j)) {
        const key = `${'  '.repeat(d)}${k}`;
        out.push(v === undefined ? key : `${key}${' '.repeat(Math.max(2, width - k.length + 2))}${v}`.trimEnd());
      }
      i = j;
    }
    return `${out.join('\n')}\n`;
  }
}

function labelsText(m: unknown): string[] {
  const e = Object.entries(rec(m) ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return e.length ? e.map(([k, v]) => `${k}=${String(v)}`) : ['<none>'];
}

function annotationsText(m: unknown): string[] {
  const e = Object.entries(rec(m) ?? {}).filter(([k]) => k !== 'kubectl.kubernetes.io/last-applied-configuration')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return e.length ? e.map(([k, v]) => `${k}: ${String(v)}`) : ['<none>'];
}

/** kubectl prints times as RFC 1123 with a numeric zone: "Mon, 02 Jan 2006 15:04:05 +0000". */
export function describeTime(ts: unknown): string {
  if (typeof ts !== 'string' || !ts) return '<unset>';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  const day = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'][d.getUTCDay()];
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getUTCMonth()];
  const p = (n: number) => String(n).padStart(2, '0');
  return `${day}, ${p(d.getUTCDate())} ${mon} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

function multi(w: Writer, depth: number, key: string, values: string[]): void {
  w.line(depth, key, values[0]);
  for (const v of values.slice(1)) w.line(depth, '', v);
}

function metadataSection(w: Writer, o: KubeObject, namespaced: boolean): void {
  const m = (o.metadata ?? {}) as Obj;
  w.line(0, 'Name:', String(m.name ?? ''));
  if (namespaced) w.line(0, 'Namespace:', String(m.namespace ?? ''));
  multi(w, 0, 'Labels:', labelsText(m.labels));
  multi(w, 0, 'Annotations:', annotationsText(m.annotations));
  w.line(0, 'CreationTimestamp:', describeTime(m.creationTimestamp));
  if (m.deletionTimestamp) w.line(0, 'DeletionTimestamp:', describeTime(m.deletionTimestamp));
  const ctl = arr(m.ownerReferences).map(rec).find((r) => r?.controller);
  if (ctl) w.line(0, 'Controlled By:', `${String(ctl.kind)}/${String(ctl.name)}`);
  const fin = arr(m.finalizers);
  if (fin.length) w.line(0, 'Finalizers:', `[${fin.join(' ')}]`);
}

function selectorText(sel: unknown): string {
  const s = rec(sel);
  if (!s) return '<none>';
  const parts = Object.entries(rec(s.matchLabels) ?? {}).map(([k, v]) => `${k}=${String(v)}`);
  for (const e of arr(s.matchExpressions).map(rec)) {
    if (!e) continue;
    const vals = arr(e.values).join(',');
    parts.push(e.operator === 'Exists' ? String(e.key) : e.operator === 'DoesNotExist' ? `!${String(e.key)}` : `${String(e.key)} ${String(e.operator).toLowerCase()} (${vals})`);
  }
  return parts.length ? parts.join(',') : '<none>';
}

/** The summary lines kubectl shows first for the main kinds. */
function kindSummary(w: Writer, kind: string, o: Obj): boolean {
  const spec = rec(o.spec) ?? {};
  const st = rec(o.status) ?? {};
  switch (kind) {
    case 'Pod': {
      w.line(0, 'Node:', spec.nodeName ? String(spec.nodeName) : '<none>');
      w.line(0, 'Status:', rec(o.metadata)?.deletionTimestamp ? 'Terminating' : String(st.phase ?? 'Unknown'));
      w.line(0, 'IP:', String(st.podIP ?? ''));
      w.line(0, 'Containers:');
      const statuses = new Map(arr(st.containerStatuses).map(rec).filter(Boolean).map((s) => [String(s!.name), s!]));
      for (const c of arr(spec.containers).map(rec)) {
        if (!c) continue;
        w.line(1, `${String(c.name)}:`);
        w.line(2, 'Image:', String(c.image ?? ''));
        const ports = arr(c.ports).map(rec).filter(Boolean).map((p) => `${String(p!.containerPort)}/${String(p!.protocol ?? 'TCP')}`);
        w.line(2, 'Port:', ports.length ? ports.join(', ') : '<none>');
        const s = statuses.get(String(c.name));
        const state = rec(s?.state);
        if (state) w.line(2, 'State:', Object.keys(state)[0]?.replace(/^./, (x) => x.toUpperCase()) ?? '');
        if (s) {
          w.line(2, 'Ready:', String(s.ready ?? false));
          w.line(2, 'Restart Count:', String(s.restartCount ?? 0));
        }
      }
      return true;
    }
    case 'Deployment':
    case 'ReplicaSet':
    case 'StatefulSet':
    case 'DaemonSet': {
      w.line(0, 'Selector:', selectorText(spec.selector));
      if (kind === 'Deployment') {
        const n = (v: unknown) => Number(v ?? 0);
        w.line(0, 'Replicas:', `${n(spec.replicas ?? 1)} desired | ${n(st.updatedReplicas)} updated | ${n(st.replicas)} total | ${n(st.availableReplicas)} available | ${n(st.unavailableReplicas)} unavailable`);
        w.line(0, 'StrategyType:', String(rec(spec.strategy)?.type ?? 'RollingUpdate'));
      } else if (kind === 'DaemonSet') {
        w.line(0, 'Desired Number of Nodes Scheduled:', String(st.desiredNumberScheduled ?? 0));
        w.line(0, 'Current Number of Nodes Scheduled:', String(st.currentNumberScheduled ?? 0));
        w.line(0, 'Number of Nodes Scheduled with Available Pods:', String(st.numberAvailable ?? 0));
      } else {
        w.line(0, 'Replicas:', `${String(st.replicas ?? 0)} current / ${String(spec.replicas ?? 1)} desired`);
      }
      return true;
    }
    case 'Service': {
      w.line(0, 'Selector:', Object.entries(rec(spec.selector) ?? {}).map(([k, v]) => `${k}=${String(v)}`).join(',') || '<none>');
      w.line(0, 'Type:', String(spec.type ?? 'ClusterIP'));
      w.line(0, 'IP:', String(spec.clusterIP ?? '<none>'));
      for (const p of arr(spec.ports).map(rec)) {
        if (!p) continue;
        w.line(0, 'Port:', `${String(p.name ?? '<unset>')}  ${String(p.port)}/${String(p.protocol ?? 'TCP')}`);
        w.line(0, 'TargetPort:', `${String(p.targetPort ?? p.port)}/${String(p.protocol ?? 'TCP')}`);
      }
      return true;
    }
    case 'Namespace':
      w.line(0, 'Status:', String(st.phase ?? 'Active'));
      return true;
    case 'Node': {
      const addrs = arr(st.addresses).map(rec).filter(Boolean).map((a) => `${String(a!.type)}: ${String(a!.address)}`);
      multi(w, 0, 'Addresses:', addrs.length ? addrs : ['<none>']);
      w.line(0, 'Unschedulable:', String(!!spec.unschedulable));
      return true;
    }
    default:
      return false;
  }
}

/** spec and status as kubectl's generic describer prints unknown kinds: an indented tree. */
function tree(w: Writer, depth: number, key: string, v: unknown): void {
  if (Array.isArray(v)) {
    if (!v.length) return;
    w.line(depth, `${key}:`);
    for (const item of v) {
      if (rec(item)) {
        const entries = Object.entries(item as Obj);
        entries.forEach(([k, x], i) => tree(w, depth + 1, i === 0 ? `${k}` : k, x));
      } else w.line(depth + 1, String(item));
    }
    return;
  }
  const r = rec(v);
  if (r) {
    const entries = Object.entries(r);
    if (!entries.length) return;
    w.line(depth, `${key}:`);
    for (const [k, x] of entries) tree(w, depth + 1, k, x);
    return;
  }
  if (v === undefined || v === null || v === '') return;
  w.line(depth, `${key}:`, String(v));
}

function table(header: string[], rows: string[][], indent: string): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => `${indent}${r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]))).join('  ')}`.trimEnd();
  return [fmt(header), fmt(header.map((h) => '-'.repeat(h.length))), ...rows.map(fmt)].join('\n');
}

function conditionsSection(status: unknown): string {
  const conds = arr(rec(status)?.conditions).map(rec).filter(Boolean) as Obj[];
  if (!conds.length) return '';
  const rows = conds.map((c) => [String(c.type ?? ''), String(c.status ?? ''), String(c.reason ?? ''), String(c.message ?? '')]);
  return `Conditions:\n${table(['Type', 'Status', 'Reason', 'Message'], rows, '  ')}\n`;
}

/** kubectl describe's event age: "5m", or "5m (x3 over 20m)" for a repeated event. */
export function eventAge(e: CoreEventLike, now: number): string {
  const last = e.series?.lastObservedTime ?? e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp;
  const first = e.firstTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp;
  const count = e.series?.count ?? e.count ?? 1;
  const age = (ts: unknown) => (typeof ts === 'string' && ts ? humanDuration(now - Date.parse(ts)) : '<unknown>');
  return count > 1 ? `${age(last)} (x${count} over ${age(first)})` : age(last);
}

export function eventsSection(events: readonly CoreEventLike[], now: number): string {
  if (!events.length) return 'Events:  <none>\n';
  const lastOf = (e: CoreEventLike) => Date.parse(e.series?.lastObservedTime ?? e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? '') || 0;
  const rows = [...events].sort((a, b) => lastOf(a) - lastOf(b)).map((e) => [
    e.type ?? '', e.reason ?? '', eventAge(e, now), e.source?.component || e.reportingComponent || '', String(e.message ?? '').trim(),
  ]);
  return `Events:\n${table(['Type', 'Reason', 'Age', 'From', 'Message'], rows, '  ')}\n`;
}

/** The whole description of one object. */
export function describeObject(o: KubeObject, opts: { kind: string; namespaced: boolean; events: readonly CoreEventLike[]; now: number }): string {
  const w = new Writer();
  metadataSection(w, o, opts.namespaced);
  const summarized = kindSummary(w, opts.kind, o as Obj);
  const { metadata: _m, apiVersion: _a, kind: _k, status, ...rest } = o as Obj;
  // Kinds without a summary of their own: every field as a tree (kubectl's generic describer).
  if (!summarized) for (const [k, v] of Object.entries(rest)) tree(w, 0, k.replace(/^./, (x) => x.toUpperCase()), v);
  const st = rec(status);
  if (st && !summarized) {
    const { conditions: _c, ...others } = st;
    tree(w, 0, 'Status', Object.keys(others).length ? others : undefined);
  }
  return `${w.text()}${conditionsSection(status)}${eventsSection(opts.events, opts.now)}`;
}
