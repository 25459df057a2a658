// The register workload: concurrent clients read, write and compare-and-set
// (by resourceVersion) a few ConfigMaps through random servers, recording
// every operation with invoke/ok/fail/unknown and monotonic times; watchers
// follow the same ConfigMaps and resume on another server when cut off.
import { Pool } from 'undici';
import type { Operation } from './checker/linearizability.ts';
import type { RegisterInput, RegisterOutput } from './checker/register.ts';
import type { Rng } from '../harness/rng.ts';

export const NAMESPACE = 'chaos';

export interface AckedWrite {
  key: string;
  value: string;
  rv: number;
}

export interface WatchRecord {
  watcher: number;
  server: string;
  type: string;
  key: string;
  value: string | null;
  rv: number;
}

export interface WorkloadResult {
  ops: Operation<RegisterInput, RegisterOutput>[];
  acked: AckedWrite[];
  initial: Record<string, string>;
  startRv: number;
  watches: { watcher: number; events: WatchRecord[]; resumes: number; gone: number; startRv: number }[];
}

interface HttpResult {
  status: number;
  body: any;
}

export class RegisterWorkload {
  private stopped = false;
  private readonly pools = new Map<string, Pool>();
  readonly t0 = performance.now();
  readonly ops: Operation<RegisterInput, RegisterOutput>[] = [];
  /** Unconditional writes refused with 409 Conflict (no effect, not in the history). */
  conflicts = 0;
  readonly acked: AckedWrite[] = [];
  private readonly watchAborts: AbortController[] = [];

  constructor(
    private readonly servers: () => string[],
    private readonly rng: Rng,
    readonly keys = Array.from({ length: 5 }, (_, i) => `k${i}`),
    private readonly clients = 10,
    private readonly watchers = 2,
  ) {}

  now(): number {
    return performance.now() - this.t0;
  }

  private pool(url: string): Pool {
    let p = this.pools.get(url);
    if (!p) this.pools.set(url, (p = new Pool(url, { connections: 8 })));
    return p;
  }

  private async http(url: string, method: string, path: string, body?: unknown, timeoutMs = 2000): Promise<HttpResult> {
    const r = await this.pool(url).request({
      method: method as 'GET', path, body: body === undefined ? undefined : JSON.stringify(body),
      headers: { 'content-type': 'application/json' }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs,
    });
    const text = await r.body.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: r.statusCode, body: parsed };
  }

  private pick<T>(xs: T[]): T {
    return xs[this.rng.int(xs.length)];
  }

  /** Creates the namespace and the registers with known initial values. */
  async setup(): Promise<{ initial: Record<string, string>; startRv: number }> {
    const url = this.servers()[0];
    await this.retry(() => this.http(url, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } }), [201, 409]);
    const initial: Record<string, string> = {};
    let startRv = 0;
    for (const k of this.keys) {
      initial[k] = `init-${k}`;
      const r = await this.retry(() => this.http(url, 'POST', `/api/v1/namespaces/${NAMESPACE}/configmaps`, cm(k, initial[k])), [201]);
      startRv = Math.max(startRv, Number(r.body.metadata.resourceVersion));
    }
    return { initial, startRv };
  }

  private async retry(fn: () => Promise<HttpResult>, ok: number[]): Promise<HttpResult> {
    for (let i = 0; ; i++) {
      try {
        const r = await fn();
        if (ok.includes(r.status)) return r;
        if (i > 50) throw new Error(`setup failed: ${r.status} ${JSON.stringify(r.body)}`);
      } catch (e) {
        if (i > 50) throw e;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }

  async run(seconds: number, startRv: number): Promise<WorkloadResult['watches']> {
    // The run lasts `seconds` from now, however long the setup took.
    const deadline = performance.now() + seconds * 1000;
    const watches = Array.from({ length: this.watchers }, (_, w) => this.watch(w, startRv));
    await Promise.all(Array.from({ length: this.clients }, (_, c) => this.client(c, deadline)));
    this.stopped = true;
    for (const a of this.watchAborts) a.abort();
    const res = await Promise.all(watches);
    for (const p of this.pools.values()) await p.close().catch(() => {});
    return res;
  }

  private async client(id: number, deadline: number): Promise<void> {
    const lastRead = new Map<string, { value: string; rv: string }>();
    let n = 0;
    while (performance.now() < deadline) {
      const key = this.pick(this.keys);
      const url = this.pick(this.servers());
      const roll = this.rng.next();
      const path = `/api/v1/namespaces/${NAMESPACE}/configmaps/${key}`;
      if (roll < 0.5) {
        const call = this.now();
        try {
          const r = await this.http(url, 'GET', path);
          if (r.status === 200) {
            const value = r.body.data?.v ?? null;
            lastRead.set(key, { value, rv: r.body.metadata.resourceVersion });
            this.ops.push({ clientId: id, input: { op: 'read', key }, call, output: { value }, return: this.now() });
          } else if (r.status === 404) {
            this.ops.push({ clientId: id, input: { op: 'read', key }, call, output: { value: null }, return: this.now() });
          }
          // Any other answer: the read told us nothing.
        } catch {
          /* unknown read: dropped */
        }
      } else {
        const value = `c${id}-${n++}`;
        const prev = lastRead.get(key);
        const cas = roll >= 0.75 && prev !== undefined;
        const body = cm(key, value);
        if (cas) (body.metadata as Record<string, unknown>).resourceVersion = prev.rv;
        const input: RegisterInput = cas ? { op: 'cas', key, from: prev.value, to: value } : { op: 'write', key, value };
        const call = this.now();
        let output: RegisterOutput;
        let ret = Infinity;
        try {
          const r = await this.http(url, 'PUT', path, body);
          if (r.status === 200) {
            output = { ok: true };
            ret = this.now();
            this.acked.push({ key, value, rv: Number(r.body.metadata.resourceVersion) });
          } else if (r.status === 409 && cas) {
            output = { ok: false };
            ret = this.now();
          } else if (r.status === 409) {
            // An unconditional write refused with Conflict (the server's own read-modify-write retries ran out,
            // as they do against a member serving stale state) definitely had no effect: nothing to record.
            this.conflicts++;
            continue;
          } else if (r.status >= 500) {
            output = { unknown: true };
          } else {
            throw new Error(`unexpected ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`);
          }
        } catch (e) {
          if ((e as Error).message.startsWith('unexpected')) throw e;
          // A refused connection never reached a server: no effect, nothing to record.
          if ((e as { code?: string }).code === 'ECONNREFUSED') {
            await new Promise((r) => setTimeout(r, 20));
            continue;
          }
          output = { unknown: true };
        }
        this.ops.push({ clientId: id, input, call, output, return: ret });
        if (cas) lastRead.delete(key);
      }
    }
  }

  /** One watcher: follows the registers, resuming from the last seen resourceVersion on another server when its stream ends. */
  private async watch(w: number, startRv: number): Promise<WorkloadResult['watches'][number]> {
    const events: WatchRecord[] = [];
    let rv = startRv;
    let resumes = 0;
    let gone = 0;
    const ac = new AbortController();
    this.watchAborts.push(ac);
    while (!this.stopped) {
      const url = this.pick(this.servers());
      try {
        const r = await this.pool(url).request({
          method: 'GET', path: `/api/v1/namespaces/${NAMESPACE}/configmaps?watch=1&resourceVersion=${rv}&timeoutSeconds=30`,
          signal: ac.signal, headersTimeout: 3000, bodyTimeout: 5000,
        });
        if (r.statusCode !== 200) {
          await r.body.dump();
          throw new Error(String(r.statusCode));
        }
        let buf = '';
        for await (const chunk of r.body) {
          buf += chunk.toString();
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const e = JSON.parse(buf.slice(0, nl));
            buf = buf.slice(nl + 1);
            if (e.type === 'ERROR') {
              gone++;
              throw new Error(`watch error ${e.object?.code}`);
            }
            if (e.type === 'BOOKMARK') continue;
            const erv = Number(e.object.metadata.resourceVersion);
            events.push({ watcher: w, server: url, type: e.type, key: e.object.metadata.name, value: e.object.data?.v ?? null, rv: erv });
            rv = Math.max(rv, erv);
          }
        }
      } catch {
        if (this.stopped) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      resumes++;
    }
    return { watcher: w, events, resumes, gone, startRv };
  }
}

function cm(name: string, v: string): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: NAMESPACE }, data: { v } };
}
