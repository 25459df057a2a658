// The latest usage sample of each pod and node, as node agents reported it,
// kept for a bounded time: a pod whose node stopped reporting drops out
// instead of showing stale usage forever.
import type { NodeUsageReport, ResourceUsage } from '../../api/metrics.ts';
import { parseQuantity } from '../../api/schema/validate.ts';
import { parseDuration } from '../../api/units.ts';

export interface ContainerSample {
  name: string;
  usage: ResourceUsage;
}

export interface PodSample {
  node: string;
  timestamp: string;
  window: string;
  containers: ContainerSample[];
  receivedAt: number;
}

export interface NodeSample {
  timestamp: string;
  window: string;
  usage: ResourceUsage;
  receivedAt: number;
}

export class ReportError extends Error {
  override name = 'ReportError';
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function checkUsage(u: unknown, where: string): ResourceUsage {
  if (!isObj(u)) throw new ReportError(`${where}: usage must be an object {cpu, memory}`);
  for (const r of ['cpu', 'memory'] as const) {
    const q = u[r];
    if (typeof q !== 'string') throw new ReportError(`${where}: usage.${r} must be a quantity string`);
    try {
      if (parseQuantity(q) < 0) throw new Error('negative');
    } catch {
      throw new ReportError(`${where}: usage.${r} "${q}" is not a non-negative quantity`);
    }
  }
  return { cpu: u.cpu as string, memory: u.memory as string };
}

/** Checks the shape of a decoded report; throws ReportError saying what is wrong. */
export function checkReport(v: unknown): NodeUsageReport {
  if (!isObj(v)) throw new ReportError('a report must be a JSON object');
  const { node, timestamp, window, pods } = v;
  if (typeof node !== 'string' || !node) throw new ReportError('report.node must be a non-empty string');
  if (typeof timestamp !== 'string' || Number.isNaN(Date.parse(timestamp))) throw new ReportError(`report.timestamp must be an RFC 3339 time (node ${node})`);
  if (typeof window !== 'string') throw new ReportError(`report.window must be a duration string (node ${node})`);
  try {
    parseDuration(window, 'report.window');
  } catch (e) {
    throw new ReportError((e as Error).message);
  }
  if (!Array.isArray(pods)) throw new ReportError(`report.pods must be an array (node ${node})`);
  const out: NodeUsageReport = { node, timestamp, window, pods: [] };
  if (v.usage !== undefined) out.usage = checkUsage(v.usage, `node ${node}`);
  for (const p of pods) {
    if (!isObj(p) || typeof p.namespace !== 'string' || typeof p.name !== 'string' || !p.namespace || !p.name) {
      throw new ReportError(`report.pods entries need a namespace and a name (node ${node})`);
    }
    if (!Array.isArray(p.containers)) throw new ReportError(`pod ${p.namespace}/${p.name}: containers must be an array`);
    const containers = p.containers.map((c: unknown) => {
      if (!isObj(c) || typeof c.name !== 'string' || !c.name) throw new ReportError(`pod ${p.namespace}/${p.name}: every container needs a name`);
      return { name: c.name, usage: checkUsage(c.usage, `pod ${p.namespace}/${p.name} container ${c.name}`) };
    });
    out.pods.push({ namespace: p.namespace, name: p.name, containers });
  }
  return out;
}

export class ResourceMetricsCache {
  private readonly pods = new Map<string, PodSample>();
  private readonly nodes = new Map<string, NodeSample>();

  /** @param retentionMs how long a sample is served after it was received */
  constructor(private readonly retentionMs: number, private readonly now: () => number = Date.now) {}

  /** Takes a node's report: its pods' samples replace earlier ones; the node's pods absent from it are dropped (they left the node). */
  ingest(r: NodeUsageReport): void {
    const receivedAt = this.now();
    for (const [key, s] of this.pods) if (s.node === r.node) this.pods.delete(key);
    for (const p of r.pods) {
      this.pods.set(`${p.namespace}/${p.name}`, { node: r.node, timestamp: r.timestamp, window: r.window, containers: p.containers, receivedAt });
    }
    if (r.usage) this.nodes.set(r.node, { timestamp: r.timestamp, window: r.window, usage: r.usage, receivedAt });
  }

  pod(namespace: string, name: string): PodSample | undefined {
    return this.fresh(this.pods, `${namespace}/${name}`);
  }

  node(name: string): NodeSample | undefined {
    return this.fresh(this.nodes, name);
  }

  /** Drops what is older than the retention (also done lazily on reads). */
  prune(): void {
    const limit = this.now() - this.retentionMs;
    for (const m of [this.pods, this.nodes] as Map<string, { receivedAt: number }>[]) {
      for (const [k, s] of m) if (s.receivedAt < limit) m.delete(k);
    }
  }

  get size(): { pods: number; nodes: number } {
    return { pods: this.pods.size, nodes: this.nodes.size };
  }

  private fresh<T extends { receivedAt: number }>(m: Map<string, T>, key: string): T | undefined {
    const s = m.get(key);
    if (!s) return undefined;
    if (s.receivedAt < this.now() - this.retentionMs) {
      m.delete(key);
      return undefined;
    }
    return s;
  }
}
