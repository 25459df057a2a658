// Container probes as the kubelet runs them (pkg/kubelet/prober): httpGet
// (success: a status in [200, 400)), tcpSocket (a connection opens) and exec
// (exit code 0), each bounded by timeoutSeconds; a worker per probe runs it
// every periodSeconds after initialDelaySeconds and changes its result only
// after failureThreshold consecutive failures or successThreshold
// consecutive successes. Initial results: readiness failure, liveness
// success, startup none (the container is not "started" until it succeeds).
import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { request } from 'undici';

export type ProbeKind = 'startup' | 'liveness' | 'readiness';

export interface ProbeSpec {
  exec?: { command?: string[] };
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string; httpHeaders?: { name: string; value: string }[] };
  tcpSocket?: { port: number | string; host?: string };
  grpc?: { port: number; service?: string };
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  failureThreshold?: number;
  successThreshold?: number;
  terminationGracePeriodSeconds?: number;
}

export interface ProbeTarget {
  podIP: string;
  ports: { name?: string; containerPort: number }[];
  env: Record<string, string>;
  cwd: string;
}

export interface ProbeOutcome {
  ok: boolean;
  /** Why it failed, in the kubelet's words where it has them. */
  output: string;
}

function portOf(port: number | string, t: ProbeTarget): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return t.ports.find((p) => p.name === port)?.containerPort;
}

export async function runProbe(spec: ProbeSpec, t: ProbeTarget): Promise<ProbeOutcome> {
  const timeoutMs = Math.max(1, spec.timeoutSeconds ?? 1) * 1000;
  if (spec.httpGet) {
    const g = spec.httpGet;
    const port = portOf(g.port, t);
    if (port === undefined) return { ok: false, output: `unknown port "${String(g.port)}"` };
    const url = `${(g.scheme ?? 'HTTP').toLowerCase()}://${g.host || t.podIP}:${port}${g.path ?? '/'}`;
    const headers: Record<string, string> = { 'user-agent': 'kube-probe/1.30', accept: '*/*' };
    for (const h of g.httpHeaders ?? []) headers[h.name.toLowerCase()] = h.value;
    try {
      const r = await request(url, { headers, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: AbortSignal.timeout(timeoutMs) });
      await r.body.dump();
      if (r.statusCode >= 200 && r.statusCode < 400) return { ok: true, output: '' };
      return { ok: false, output: `HTTP probe failed with statuscode: ${r.statusCode}` };
    } catch (e) {
      return { ok: false, output: `Get "${url}": ${(e as Error).message}` };
    }
  }
  if (spec.tcpSocket) {
    const port = portOf(spec.tcpSocket.port, t);
    if (port === undefined) return { ok: false, output: `unknown port "${String(spec.tcpSocket.port)}"` };
    const host = spec.tcpSocket.host || t.podIP;
    return new Promise((resolve) => {
      const sock = createConnection({ host, port });
      const done = (o: ProbeOutcome) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(o);
      };
      const timer = setTimeout(() => done({ ok: false, output: `dial tcp ${host}:${port}: i/o timeout` }), timeoutMs);
      sock.once('connect', () => done({ ok: true, output: '' }));
      sock.once('error', (e) => done({ ok: false, output: `dial tcp ${host}:${port}: ${e.message}` }));
    });
  }
  if (spec.exec?.command?.length) {
    const [cmd, ...args] = spec.exec.command;
    return new Promise((resolve) => {
      let out = '';
      const child = spawn(cmd, args, { cwd: t.cwd, env: t.env, stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
      const collect = (b: Buffer) => {
        if (out.length < 10_240) out += b.toString('utf8');
      };
      child.stdout.on('data', collect);
      child.stderr.on('data', collect);
      child.once('error', (e) => resolve({ ok: false, output: e.message }));
      child.once('close', (code, signal) => {
        if (signal === 'SIGKILL') resolve({ ok: false, output: `command timed out after ${timeoutMs / 1000}s` });
        else resolve({ ok: code === 0, output: out.trim() || (code === 0 ? '' : `command exited with ${code}`) });
      });
    });
  }
  if (spec.grpc) return { ok: false, output: 'grpc probes are not supported by this node agent' };
  return { ok: false, output: 'the probe has no handler' };
}

/** One probe of one container run: runs periodically, reports result changes and each failure. */
export class ProbeWorker {
  /** The current result; undefined until the first decisive one (startup). */
  result: boolean | undefined;
  private last: boolean | undefined;
  private run = 0;
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    readonly kind: ProbeKind,
    private readonly spec: ProbeSpec,
    private readonly o: {
      target: () => ProbeTarget;
      /** Whether the probe may run now (liveness and readiness wait for startup). */
      gate?: () => boolean;
      onResult(worker: ProbeWorker, ok: boolean): void;
      onFailure(worker: ProbeWorker, output: string): void;
    },
  ) {
    this.result = kind === 'readiness' ? false : kind === 'liveness' ? true : undefined;
  }

  start(): void {
    const delay = Math.max(0, this.spec.initialDelaySeconds ?? 0) * 1000;
    this.timer = setTimeout(() => void this.tick(), delay);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    if (!this.o.gate || this.o.gate()) {
      const outcome = await runProbe(this.spec, this.o.target());
      if (this.stopped) return;
      this.record(outcome);
    }
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), Math.max(1, this.spec.periodSeconds ?? 10) * 1000);
    this.timer.unref();
  }

  private record(o: ProbeOutcome): void {
    if (!o.ok) this.o.onFailure(this, o.output);
    this.run = this.last === o.ok ? this.run + 1 : 1;
    this.last = o.ok;
    const needed = o.ok ? Math.max(1, this.spec.successThreshold ?? 1) : Math.max(1, this.spec.failureThreshold ?? 3);
    if (this.run < needed || this.result === o.ok) return;
    this.result = o.ok;
    // A failed liveness or startup probe kills the container; after a startup success there is nothing left to probe.
    if ((this.kind !== 'readiness' && !o.ok) || (this.kind === 'startup' && o.ok)) this.stop();
    this.o.onResult(this, o.ok);
  }
}
