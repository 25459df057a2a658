// A cgroup per pod, so that the kernel enforces resources.limits: the
// memory limit (the kernel's OOM killer ends a pod that exceeds it; the
// container's status then says OOMKilled, exit code 137) and a CFS quota for
// the cpu limit; cpu requests become cpu shares (weight in v2), as the
// kubelet sets them. Pod cgroups live under the agent's own cgroup, in
// `flotilla/<pod uid>`, for each of the v1 hierarchies memory, cpu, cpuacct
// and pids — or in the v2 unified hierarchy. Where none can be created
// (no permission, no hierarchy) the mode is 'none' and the runtime falls back
// to polling the resident memory of each pod's processes.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseQuantity } from '../../../api/schema/validate.ts';
import type { Pod } from '../../informer/types.ts';

export type CgroupMode = 'v1' | 'v2' | 'none';

/** The kubelet's CFS period (100 ms) and smallest quota (1 ms). */
const CFS_PERIOD_US = 100_000;
const MIN_QUOTA_US = 1000;
const V1_CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'pids'] as const;

export interface PodResources {
  /** Bytes; undefined when some container has no memory limit (then the pod has none). */
  memoryLimit?: number;
  /** Cores; undefined when some container has no cpu limit. */
  cpuLimit?: number;
  /** Cores (sum of requests; a limit without a request counts as the request). */
  cpuRequest: number;
}

function amount(c: { resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> } }, res: string, kind: 'limits' | 'requests'): number | undefined {
  const v = c.resources?.[kind]?.[res] ?? (kind === 'requests' ? c.resources?.limits?.[res] : undefined);
  return v === undefined ? undefined : parseQuantity(v);
}

/**
 * The pod-level figures, as the kubelet sizes a pod cgroup: the sum over
 * containers, or the largest init container when that is bigger (init
 * containers run one at a time); a limit only when every container has one.
 */
export function podResources(pod: Pod): PodResources {
  const containers = pod.spec?.containers ?? [];
  const inits = (pod.spec?.initContainers ?? []) as typeof containers;
  const sum = (res: string, kind: 'limits' | 'requests'): number | undefined => {
    let total = 0;
    for (const c of containers) {
      const v = amount(c, res, kind);
      if (v === undefined) {
        if (kind === 'limits') return undefined;
        continue;
      }
      total += v;
    }
    for (const c of inits) {
      const v = amount(c, res, kind);
      if (v === undefined && kind === 'limits') return undefined;
      if (v !== undefined) total = Math.max(total, v);
    }
    return total;
  };
  return { memoryLimit: containers.length ? sum('memory', 'limits') : undefined, cpuLimit: containers.length ? sum('cpu', 'limits') : undefined, cpuRequest: sum('cpu', 'requests') ?? 0 };
}

/** The kubelet's MilliCPUToShares: 1024 per core, at least 2. */
export function cpuShares(cores: number): number {
  return Math.max(2, Math.floor((cores * 1000 * 1024) / 1000));
}

/** cgroup v2 weight from v1 shares (the kubelet's conversion). */
export function cpuWeight(shares: number): number {
  return Math.floor(1 + ((shares - 2) * 9999) / 262142);
}

export function cpuQuotaUs(cores: number): number {
  return Math.max(MIN_QUOTA_US, Math.floor(cores * CFS_PERIOD_US));
}

/** The agent's own cgroup path in a hierarchy ("" for v2), from /proc/self/cgroup. */
function ownPath(controller: string | ''): string {
  for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
    const [, ctrls, path] = line.split(':');
    if (ctrls === undefined || path === undefined) continue;
    if (controller === '' ? ctrls === '' : ctrls.split(',').includes(controller)) return path;
  }
  return '/';
}

export class PodCgroup {
  constructor(readonly mode: Exclude<CgroupMode, 'none'>, readonly dirs: Record<string, string>) {}

  /** The cgroup.procs files a new process is written to (one per hierarchy). */
  get procsFiles(): string[] {
    return [...new Set(Object.values(this.dirs))].map((d) => join(d, 'cgroup.procs'));
  }

  /** How many times the kernel OOM-killed a process in this pod's cgroup. */
  oomKills(): number {
    try {
      const text = this.mode === 'v1' ? readFileSync(join(this.dirs.memory, 'memory.oom_control'), 'utf8') : readFileSync(join(this.dirs.unified, 'memory.events'), 'utf8');
      const m = /^oom_kill (\d+)/m.exec(text);
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  }

  /** CPU time used, in nanoseconds. */
  cpuUsageNs(): number {
    if (this.mode === 'v1') return Number(readFileSync(join(this.dirs.cpuacct, 'cpuacct.usage'), 'utf8'));
    const m = /^usage_usec (\d+)/m.exec(readFileSync(join(this.dirs.unified, 'cpu.stat'), 'utf8'));
    return m ? Number(m[1]) * 1000 : 0;
  }

  /** The working set (usage − inactive file pages), as cAdvisor and the kubelet measure memory. */
  memoryWorkingSet(): number {
    const dir = this.mode === 'v1' ? this.dirs.memory : this.dirs.unified;
    const usage = Number(readFileSync(join(dir, this.mode === 'v1' ? 'memory.usage_in_bytes' : 'memory.current'), 'utf8'));
    const stat = readFileSync(join(dir, 'memory.stat'), 'utf8');
    const inactive = Number((this.mode === 'v1' ? /^total_inactive_file (\d+)/m : /^inactive_file (\d+)/m).exec(stat)?.[1] ?? 0);
    return Math.max(0, usage - inactive);
  }

  /** Removes the (empty) cgroups; false when a process is still in one. */
  remove(): boolean {
    let ok = true;
    for (const d of new Set(Object.values(this.dirs))) {
      try {
        if (existsSync(d)) rmdirSync(d);
      } catch {
        ok = false;
      }
    }
    return ok;
  }
}

export class Cgroups {
  private constructor(
    readonly mode: CgroupMode,
    /** Parent directory of pod cgroups per controller ("unified" for v2). */
    private readonly parents: Record<string, string>,
    /** Why there is no cgroup support (mode 'none'). */
    readonly reason = '',
  ) {}

  /** Finds a writable hierarchy: v2 at the root (or at /unified with the memory controller), else v1. */
  static detect(root = '/sys/fs/cgroup'): Cgroups {
    const tryParents = (mode: 'v1' | 'v2', parents: Record<string, string>): Cgroups | string => {
      try {
        for (const p of Object.values(parents)) mkdirSync(p, { recursive: true });
        if (mode === 'v2') {
          // Controllers must be enabled for the children of each level.
          const base = parents.unified;
          writeFileSync(join(base, 'cgroup.subtree_control'), '+memory +cpu +pids');
        }
        return new Cgroups(mode, parents);
      } catch (e) {
        return (e as Error).message;
      }
    };
    const v2 = (mount: string): Cgroups | string | undefined => {
      try {
        const ctrls = readFileSync(join(mount, 'cgroup.controllers'), 'utf8').split(/\s+/);
        if (!ctrls.includes('memory') || !ctrls.includes('cpu')) return undefined;
      } catch {
        return undefined;
      }
      return tryParents('v2', { unified: join(mount, ownPath(''), 'flotilla') });
    };
    const unified = v2(root) ?? v2(join(root, 'unified'));
    if (unified instanceof Cgroups) return unified;
    if (existsSync(join(root, 'memory', 'memory.limit_in_bytes')) || existsSync(join(root, 'memory'))) {
      const parents = Object.fromEntries(V1_CONTROLLERS.map((c) => [c, join(root, c, ownPath(c), 'flotilla')]));
      const v1 = tryParents('v1', parents);
      if (v1 instanceof Cgroups) return v1;
      return new Cgroups('none', {}, `cgroup v1 hierarchies could not be used: ${v1}`);
    }
    return new Cgroups('none', {}, typeof unified === 'string' ? `cgroup v2 could not be used: ${unified}` : `no cgroup hierarchy with the memory and cpu controllers under ${root}`);
  }

  /** Creates (or, after an agent restart, re-opens) a pod's cgroup and sets its limits. */
  create(uid: string, r: PodResources): PodCgroup | undefined {
    if (this.mode === 'none') return undefined;
    const dirs = Object.fromEntries(Object.entries(this.parents).map(([c, p]) => [c, join(p, uid)]));
    for (const d of new Set(Object.values(dirs))) mkdirSync(d, { recursive: true });
    const shares = cpuShares(r.cpuRequest);
    if (this.mode === 'v1') {
      writeFileSync(join(dirs.memory, 'memory.limit_in_bytes'), r.memoryLimit !== undefined ? String(Math.floor(r.memoryLimit)) : '-1');
      writeFileSync(join(dirs.cpu, 'cpu.cfs_period_us'), String(CFS_PERIOD_US));
      writeFileSync(join(dirs.cpu, 'cpu.cfs_quota_us'), r.cpuLimit !== undefined ? String(cpuQuotaUs(r.cpuLimit)) : '-1');
      writeFileSync(join(dirs.cpu, 'cpu.shares'), String(shares));
    } else {
      const d = dirs.unified;
      writeFileSync(join(d, 'memory.max'), r.memoryLimit !== undefined ? String(Math.floor(r.memoryLimit)) : 'max');
      // No swap: a pod over its limit is OOM-killed rather than swapped out, as in Kubernetes by default.
      try { writeFileSync(join(d, 'memory.swap.max'), '0'); } catch { /* no swap accounting */ }
      writeFileSync(join(d, 'cpu.max'), `${r.cpuLimit !== undefined ? cpuQuotaUs(r.cpuLimit) : 'max'} ${CFS_PERIOD_US}`);
      writeFileSync(join(d, 'cpu.weight'), String(cpuWeight(shares)));
    }
    return new PodCgroup(this.mode, dirs);
  }

  /** Removes a pod's cgroups once its processes are gone (an orphan found after an agent restart). */
  remove(uid: string): void {
    if (this.mode === 'none') return;
    new PodCgroup(this.mode, Object.fromEntries(Object.entries(this.parents).map(([c, p]) => [c, join(p, uid)]))).remove();
  }

  /** A sentence for the Node's Ready condition message. */
  describe(): string {
    return this.mode === 'none' ? `; resource limits: no cgroup (${this.reason}), memory limits enforced by RSS polling, cpu limits not enforced` : `; resource limits: cgroup ${this.mode}`;
  }
}

/** Resident memory of every process of a process group (the RSS-polling fallback), in bytes. */
export function processGroupRss(pgid: number): number {
  let total = 0;
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return 0;
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) !== pgid) continue;
      total += Number(f[21]) * 4096;
    } catch {
      /* gone meanwhile */
    }
  }
  return total;
}

