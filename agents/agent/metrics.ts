// Resource metrics: every interval (15 s, metrics-server's resolution) the
// agent measures each container's CPU and memory — its process group, from
// /proc: CPU time of its live processes plus what they reaped, resident
// memory — and the node's own (/proc/stat, /proc/meminfo), and publishes a
// NodeUsageReport (api/metrics.ts) on the NATS core subject
// metrics.pods.<node>, from which the API servers serve metrics.k8s.io.
// Core NATS, not the stream: a lost sample is replaced by the next.
import { readFileSync, readdirSync } from 'node:fs';
import type { NatsConnection } from 'nats';
import { type NodeUsageReport, type PodUsageReport, metricsSubject } from '../../api/metrics.ts';
import type { Logger } from '../informer/informer.ts';

/** Linux reports CPU time in clock ticks of 1/100 s (USER_HZ). */
const TICK_S = 0.01;
const PAGE = 4096;

interface GroupSample { ticks: number; rss: number }

/** CPU ticks (self + reaped children) and RSS of every process group, in one pass over /proc. */
export function sampleProcessGroups(): Map<number, GroupSample> {
  const out = new Map<number, GroupSample>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pgid = Number(f[2]);
      // utime, stime, cutime, cstime: fields 14–17; rss: field 24.
      const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
      const g = out.get(pgid) ?? { ticks: 0, rss: 0 };
      g.ticks += ticks;
      g.rss += Number(f[21]) * PAGE;
      out.set(pgid, g);
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

function nodeCpuTicks(): { busy: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
  const busy = line.slice(0, 8).reduce((a, v, i) => (i === 3 || i === 4 ? a : a + v), 0);
  return { busy };
}

function nodeMemoryUsed(): number {
  const m = readFileSync('/proc/meminfo', 'utf8');
  const total = Number(/^MemTotal:\s+(\d+)/m.exec(m)?.[1] ?? 0);
  const avail = Number(/^MemAvailable:\s+(\d+)/m.exec(m)?.[1] ?? 0);
  return (total - avail) * 1024;
}

const nanocores = (cores: number) => `${Math.max(0, Math.round(cores * 1e9))}n`;
const kib = (bytes: number) => `${Math.max(0, Math.round(bytes / 1024))}Ki`;

export interface MeasuredContainer {
  namespace: string;
  pod: string;
  container: string;
  pgid: number;
}

export class MetricsPublisher {
  published = 0;
  private timer?: NodeJS.Timeout;
  private prev?: { at: number; groups: Map<number, GroupSample>; node: number };

  constructor(private readonly o: {
    nc: NatsConnection;
    node: string;
    intervalMs: number;
    containers: () => MeasuredContainer[];
    log: Logger;
  }) {}

  start(): void {
    this.prev = { at: Date.now(), groups: sampleProcessGroups(), node: nodeCpuTicks().busy };
    this.timer = setInterval(() => {
      try {
        this.publish();
      } catch (e) {
        this.o.log.warn({ err: (e as Error).message }, 'resource metrics: measuring failed');
      }
    }, this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Measures since the previous sample and publishes the report. */
  publish(): NodeUsageReport {
    const now = Date.now();
    const groups = sampleProcessGroups();
    const node = nodeCpuTicks().busy;
    const prev = this.prev!;
    const seconds = Math.max(0.001, (now - prev.at) / 1000);
    const pods = new Map<string, PodUsageReport>();
    for (const c of this.o.containers()) {
      const g = groups.get(c.pgid);
      if (!g) continue;
      // A group not sampled before (started in this window) counts from zero.
      const before = prev.groups.get(c.pgid)?.ticks ?? 0;
      const cores = Math.max(0, g.ticks - before) * TICK_S / seconds;
      const key = `${c.namespace}/${c.pod}`;
      let p = pods.get(key);
      if (!p) pods.set(key, (p = { namespace: c.namespace, name: c.pod, containers: [] }));
      p.containers.push({ name: c.container, usage: { cpu: nanocores(cores), memory: kib(g.rss) } });
    }
    const report: NodeUsageReport = {
      node: this.o.node,
      timestamp: new Date(now).toISOString().replace(/\.\d+Z$/, 'Z'),
      window: `${Math.round(seconds)}s`,
      usage: { cpu: nanocores(((node - prev.node) * TICK_S) / seconds), memory: kib(nodeMemoryUsed()) },
      pods: [...pods.values()],
    };
    this.prev = { at: now, groups, node };
    this.o.nc.publish(metricsSubject(this.o.node), JSON.stringify(report));
    this.published++;
    return report;
  }
}
