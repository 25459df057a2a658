// What `flotilla cluster status` says about the processes `flotilla up`
// started besides the API servers: from .flotilla/cluster.json, whether each
// pid is alive and, for the consumers, what their /healthz says (leading or
// standing by, synced).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { request } from 'undici';
import { CLUSTER_FILE } from '../../agents/client/config.ts';
import { formatTable } from './printers.ts';

export interface ComponentReport {
  component: string;
  pid: number;
  alive: boolean;
  health?: string;
  detail?: string;
}

interface Entry {
  pid?: number;
  metrics?: string;
  name?: string;
  address?: string;
  http?: string;
  /** Agents: their /healthz base URL, and how many hollow nodes the process runs. */
  endpoint?: string;
  count?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function healthz(address: string | undefined): Promise<{ health: string; detail: string } | undefined> {
  if (!address) return undefined;
  try {
    const r = await request(`http://${address}/healthz`, { headersTimeout: 1000, bodyTimeout: 1000 });
    const body = (await r.body.json()) as Record<string, unknown>;
    const bits: string[] = [];
    for (const k of ['leading', 'synced', 'clusterIPs', 'listen', 'nodes', 'pods']) if (body[k] !== undefined) bits.push(`${k}=${String(body[k])}`);
    return { health: r.statusCode === 200 ? 'ok' : `HTTP ${r.statusCode}`, detail: bits.join(' ') };
  } catch (e) {
    return { health: 'unreachable', detail: (e as Error).message };
  }
}

/** The components listed in cluster.json under `cwd`, or undefined when there is none. */
export async function componentReports(cwd = process.cwd()): Promise<ComponentReport[] | undefined> {
  let file: Record<string, unknown>;
  try {
    file = JSON.parse(readFileSync(resolve(cwd, CLUSTER_FILE), 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const list = (k: string) => (Array.isArray(file[k]) ? (file[k] as Entry[]) : []);
  const one = (k: string) => (file[k] && typeof file[k] === 'object' ? [file[k] as Entry] : []);
  const entries: [string, Entry][] = [
    ...list('natsServers').map((e): [string, Entry] => [e.name ?? 'nats', e]),
    ...list('controllers').map((e, i): [string, Entry] => [`controllers${i + 1}`, e]),
    ...list('schedulers').map((e, i): [string, Entry] => [`scheduler${i + 1}`, e]),
    ...list('agents').map((e, i): [string, Entry] => [`agent/${e.name ?? i + 1}${e.count ? ` (${e.count} hollow nodes)` : ''}`, e]),
    ...one('dns').map((e): [string, Entry] => ['dns', e]),
    ...one('ingress').map((e): [string, Entry] => ['ingress', e]),
  ];
  return Promise.all(entries.map(async ([component, e]) => {
    const pid = Number(e.pid) || 0;
    const up = pid > 0 && alive(pid);
    const h = up ? await healthz(e.metrics ?? e.endpoint?.replace(/^https?:\/\//, '')) : undefined;
    return { component, pid, alive: up, health: h?.health, detail: h?.detail };
  }));
}

export function formatComponentTable(reports: ComponentReport[]): string {
  return formatTable(['COMPONENT', 'PID', 'ALIVE', 'HEALTH', 'DETAIL'],
    reports.map((r) => [r.component, String(r.pid || '-'), String(r.alive), r.health ?? '-', r.detail || '-']));
}
