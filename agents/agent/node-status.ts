// What the node agent reports about its machine: capacity (from the machine
// or flags), allocatable (capacity minus what is reserved for the system and
// the agent, and minus the hard eviction threshold for memory, as the
// kubelet computes it), and the pressure conditions from real measurements
// (/proc/meminfo, statfs of the data directory, the process count against
// pid_max) compared with the kubelet's default hard eviction thresholds.
import { readFileSync, readdirSync, statfsSync } from 'node:fs';
import { arch, cpus, release, totalmem } from 'node:os';
import { parseQuantity } from '../../api/schema/validate.ts';

/** The kubelet's default --eviction-hard: memory.available<100Mi, nodefs.available<10%; pids: 10 % of pid_max left. */
export const EVICTION = { memoryAvailableBytes: 100 * 2 ** 20, nodefsAvailableFraction: 0.1, pidAvailableFraction: 0.1 };

export type ResourceList = Record<string, string>;

export interface Measurements {
  memoryAvailableBytes: number;
  diskAvailableBytes: number;
  diskTotalBytes: number;
  pidsUsed: number;
  pidMax: number;
}

/** Parses "cpu=500m,memory=1Gi" (--system-reserved / --kube-reserved) into base units. */
export function parseReserved(text: string | undefined, flag: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (!text) return out;
  for (const part of text.split(',')) {
    const [k, v] = part.split('=');
    if (!k || v === undefined) throw new Error(`invalid ${flag} "${text}": expected resource=quantity[,resource=quantity]`);
    try {
      out[k.trim()] = parseQuantity(v.trim());
    } catch (e) {
      throw new Error(`invalid ${flag} quantity for ${k}: ${(e as Error).message}`);
    }
  }
  return out;
}

/** cpu in cores → "2" or "1500m"; bytes → "NKi" (as the kubelet reports memory); counts as integers. */
export function formatResource(name: string, v: number): string {
  const n = Math.max(0, v);
  if (name === 'cpu') return Number.isInteger(n) ? String(n) : `${Math.round(n * 1000)}m`;
  if (name === 'memory' || name === 'ephemeral-storage') return `${Math.floor(n / 1024)}Ki`;
  return String(Math.floor(n));
}

/** Capacity in base units: flags (`--capacity cpu=2,memory=4Gi`) win over the machine's figures. */
export function machineCapacity(dataDir: string, override: Record<string, number> = {}): Record<string, number> {
  const fs = statfsSync(dataDir);
  return {
    cpu: cpus().length,
    memory: totalmem(),
    pods: 110,
    'ephemeral-storage': fs.blocks * fs.bsize,
    ...override,
  };
}

/** allocatable = capacity − system-reserved − kube-reserved (− the memory eviction threshold). */
export function allocatable(capacity: Record<string, number>, ...reserved: Record<string, number>[]): Record<string, number> {
  const out = { ...capacity };
  for (const r of reserved) for (const [k, v] of Object.entries(r)) if (k in out) out[k] -= v;
  if ('memory' in out) out.memory -= EVICTION.memoryAvailableBytes;
  for (const k of Object.keys(out)) out[k] = Math.max(0, out[k]);
  return out;
}

export function formatList(list: Record<string, number>): ResourceList {
  return Object.fromEntries(Object.entries(list).map(([k, v]) => [k, formatResource(k, v)]));
}

export function measure(dataDir: string): Measurements {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const avail = /^MemAvailable:\s+(\d+) kB/m.exec(meminfo);
  const fs = statfsSync(dataDir);
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  const pidsUsed = readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
  return {
    memoryAvailableBytes: avail ? Number(avail[1]) * 1024 : totalmem(),
    diskAvailableBytes: fs.bavail * fs.bsize,
    diskTotalBytes: fs.blocks * fs.bsize,
    pidsUsed,
    pidMax,
  };
}

export interface NodeCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastHeartbeatTime?: string;
  lastTransitionTime?: string;
}

/** The four conditions the kubelet keeps, with its reasons and messages. */
export function conditionsFrom(m: Measurements, extraReadyMessage = ''): NodeCondition[] {
  const memory = m.memoryAvailableBytes < EVICTION.memoryAvailableBytes;
  const disk = m.diskAvailableBytes < m.diskTotalBytes * EVICTION.nodefsAvailableFraction;
  const pid = m.pidMax - m.pidsUsed < m.pidMax * EVICTION.pidAvailableFraction;
  return [
    memory
      ? { type: 'MemoryPressure', status: 'True', reason: 'KubeletHasInsufficientMemory', message: 'kubelet has insufficient memory available' }
      : { type: 'MemoryPressure', status: 'False', reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available' },
    disk
      ? { type: 'DiskPressure', status: 'True', reason: 'KubeletHasDiskPressure', message: 'kubelet has disk pressure' }
      : { type: 'DiskPressure', status: 'False', reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure' },
    pid
      ? { type: 'PIDPressure', status: 'True', reason: 'KubeletHasInsufficientPID', message: 'kubelet has insufficient PID available' }
      : { type: 'PIDPressure', status: 'False', reason: 'KubeletHasSufficientPID', message: 'kubelet has sufficient PID available' },
    { type: 'Ready', status: 'True', reason: 'KubeletReady', message: `kubelet is posting ready status${extraReadyMessage}` },
  ];
}

/**
 * Carries lastTransitionTime over from the previous conditions when the
 * status did not change; stamps heartbeat times.
 */
export function mergeConditions(prev: NodeCondition[] | undefined, next: NodeCondition[], now: string): NodeCondition[] {
  return next.map((c) => {
    const old = prev?.find((p) => p.type === c.type);
    return { ...c, lastHeartbeatTime: now, lastTransitionTime: old && old.status === c.status && old.lastTransitionTime ? old.lastTransitionTime : now };
  });
}

/** Whether two condition lists differ in anything but heartbeat times. */
export function conditionsChanged(a: NodeCondition[] | undefined, b: NodeCondition[]): boolean {
  if (!a || a.length !== b.length) return true;
  return b.some((c) => {
    const o = a.find((x) => x.type === c.type);
    return !o || o.status !== c.status || o.reason !== c.reason || o.message !== c.message;
  });
}

export function nodeInfo(version: string): Record<string, string> {
  let machineID = '';
  let bootID = '';
  try { machineID = readFileSync('/etc/machine-id', 'utf8').trim(); } catch { /* not every system has one */ }
  try { bootID = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(); } catch { /* idem */ }
  let osImage = 'Linux';
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    if (m) osImage = m[1];
  } catch { /* idem */ }
  return {
    machineID, systemUUID: machineID, bootID, kernelVersion: release(), osImage,
    containerRuntimeVersion: `flotilla-process://${version}`, kubeletVersion: `v1.30.0-flotilla-${version}`, kubeProxyVersion: '',
    operatingSystem: 'linux', architecture: arch() === 'x64' ? 'amd64' : arch(),
  };
}
