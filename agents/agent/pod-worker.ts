// One pod's worker, like the kubelet's pod workers: every change to the pod
// (an API update, a container exit, a back-off expiring) schedules a sync,
// and syncs of one pod never overlap. A sync starts init containers in
// order, then the containers; restarts exited ones as restartPolicy says,
// with the kubelet's back-off (10 s doubling to 5 min, forgotten after a run
// of 10 min; the first restart is immediate); writes the status when it
// changed. A pod being deleted is stopped (preStop, SIGTERM, the grace
// period, SIGKILL of every process group) and only then removed from the API.
import { accessSync, closeSync, constants, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import type { Logger } from '../informer/informer.ts';
import type { Container, Pod } from '../informer/types.ts';
import { type ContainerRuntimeState, type Terminated, podPhase, podStatus } from './pod-status.ts';
import { type Cgroups, type PodCgroup, podResources, processGroupRss } from './runtime/cgroups.ts';
import { ContainerConfigError, type EnvSources, containerEnv } from './runtime/env.ts';
import { type VolumeSources, cleanupPodVolumes, containerMounts, emptyDirOverLimit, mountScript, preparePodVolumes, withServiceAccountVolume } from './runtime/volumes.ts';
import { type ClusterDns, writePodDnsFiles } from './runtime/dns-config.ts';
import { expand } from './runtime/expand.ts';
import { IMAGE_PATH, containerArgv } from './runtime/images.ts';
import { type ProbeKind, type ProbeSpec, ProbeWorker } from './runtime/probes.ts';
import { ContainerProcess, type ExitInfo } from './runtime/process.ts';
import type { AttachTarget } from './attach.ts';
import type { EventRecorder } from '../recorder/recorder.ts';
import type { LogObserver } from './logs.ts';
import type { PodIPAllocator } from './pod-ip.ts';
import { spawn } from 'node:child_process';

const PODS = resolveKind('pods')!;

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 10_000, maxMs: 300_000 };

/** What every pod worker of a node shares. */
export interface WorkerContext {
  client: ApiClient;
  nodeName: string;
  hostIP: string;
  dataDir: string;
  env: EnvSources;
  volumes: VolumeSources;
  /** Resolves once the node has a pod CIDR. */
  podIPs: () => Promise<PodIPAllocator>;
  /** The cluster DNS (--cluster-dns): pods get /etc/resolv.conf and /etc/hosts naming it. */
  clusterDns?: ClusterDns;
  backoff: BackoffPolicy;
  cgroups: Cgroups;
  logs: LogObserver;
  recorder: EventRecorder;
  log: Logger;
  /** Processes found running at start (agent restart), by pod uid then container name. */
  adopted: Map<string, Map<string, ContainerProcess>>;
  /** Called when a worker has nothing left to do (the pod is gone and its processes too). */
  onDone(uid: string): void;
  /** Counts of what the runtime did, for metrics and tests. */
  counters: { starts: number; restarts: number; adoptions: number; statusWrites: number; kills: number };
}

const iso = (d = new Date()) => d.toISOString().replace(/\.\d+Z$/, 'Z');

interface Slot {
  spec: Container;
  init: boolean;
  state: ContainerRuntimeState;
  proc?: ContainerProcess;
  /** The back-off the next restart waits (0: none yet). */
  backoffMs: number;
  lastStartMs?: number;
  /** When the runtime last saw it end (finishedAt has only second precision). */
  lastExitMs?: number;
  /** The pod cgroup's OOM kill count when this process started. */
  oomBaseline?: number;
  /** Killed by the RSS-polling fallback for being over the memory limit. */
  oomByPolling?: boolean;
  /** Whether the current run has its own mount namespace (exec enters it). */
  mounted?: boolean;
  /** The probes of the current run. */
  probes: ProbeWorker[];
  /** The environment and working directory the current run started with (exec probes run in them). */
  env?: Record<string, string>;
  cwd?: string;
}

/**
 * Runs argv after moving itself into the given cgroups (exec keeps the pid
 * and the process group), so that not one allocation escapes the limits.
 */
export function inCgroups(procsFiles: string[], argv: string[], mounts = ''): string[] {
  const script = `${mounts ? `${mounts}\n` : ''}n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 126; shift; n=$((n-1)); done; exec "$@"`;
  // With mounts, in a mount namespace of its own (unshare execs the shell in the same process).
  return [...(mounts ? ['unshare', '-m'] : []), '/bin/sh', '-c', script, 'sh', String(procsFiles.length), ...procsFiles, ...argv];
}

/**
 * Every pod binds its ports on its own loopback address; one that binds
 * 0.0.0.0 collides with any other doing the same. When the end of a failed
 * container's log says its address was taken, its status says why.
 */
function addressInUse(logFile: string): string | undefined {
  let tail = '';
  try {
    const size = statSync(logFile).size;
    const fd = openSync(logFile, 'r');
    try {
      const buf = Buffer.alloc(Math.min(size, 4096));
      readSync(fd, buf, 0, buf.length, size - buf.length);
      tail = buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const m = /(EADDRINUSE[^\n]*|[Aa]ddress already in use[^\n]*)/.exec(tail);
  return m ? `the container could not bind its port: ${m[1].trim().slice(0, 200)} (pods share this machine's ports on 0.0.0.0: bind $POD_IP instead)` : undefined;
}

/** A restartable init container (native sidecar): an init container with restartPolicy Always. */
export function isSidecar(c: object): boolean {
  return (c as { restartPolicy?: unknown }).restartPolicy === 'Always';
}

/** Whether a sidecar had started once (the pod's init sequence went past it). */
function initializedOnce(s: Slot): boolean {
  return s.state.everStarted === true;
}

/** Whether a program name resolves (a path, or a name found on PATH). */
function resolvable(program: string, path: string): boolean {
  const isExec = (f: string) => {
    try {
      accessSync(f, constants.X_OK);
      return statSync(f).isFile();
    } catch {
      return false;
    }
  };
  if (program.includes('/')) return isExec(program);
  return path.split(':').some((d) => d && isExec(join(d, program)));
}

export class PodWorker {
  private pod?: Pod;
  private syncing = false;
  private pending = false;
  private done = false;
  private timer?: NodeJS.Timeout;
  private readonly slots = new Map<string, Slot>();
  private podIP?: string;
  private startTime?: string;
  private lastStatus?: string;
  private terminating?: Promise<void>;
  /** Set once the pod is evicted (an emptyDir over its sizeLimit): its containers are stopped for good and it is Failed. */
  private evicted?: string;
  private cgroup?: PodCgroup;
  private cgroupFailed = false;
  /** Host directory of each volume, once prepared. */
  private volumes?: Map<string, string>;
  private rssTimer?: NodeJS.Timeout;

  constructor(readonly uid: string, private readonly ctx: WorkerContext) {}

  /**
   * When each step of this pod's start happened (ms since the epoch), until
   * the status saying Ready is written: logged then as "pod started" with
   * the time each phase took, for the benchmark's breakdown.
   */
  private readonly startTimes: { seen?: number; synced?: number; spawning?: number; spawned?: number; ready?: number; logged?: boolean } = {};

  /** The latest pod (undefined: deleted from the API). */
  update(pod: Pod | undefined): void {
    if (this.done) return;
    this.startTimes.seen ??= Date.now();
    this.pod = pod ?? (this.pod ? { ...this.pod, metadata: { ...this.pod.metadata, deletionTimestamp: this.pod.metadata.deletionTimestamp ?? iso() } } : undefined);
    if (!pod) this.removedFromApi = true;
    this.schedule(0);
  }

  private removedFromApi = false;

  /** Stops every running container of the pod (SIGTERM, then SIGKILL after graceMs), without touching the API. */
  async stopProcesses(graceMs: number): Promise<void> {
    this.done = true;
    clearTimeout(this.timer);
    await Promise.all([...this.slots.values()].filter((s) => s.proc?.running).map((s) => s.proc!.stop(graceMs)));
    this.releaseCgroup();
  }

  /**
   * Where `kubectl exec` runs a command in a container: its environment,
   * working directory and cgroup; an error message when it is not running.
   */
  execTarget(container: string): { env: Record<string, string>; cwd: string; procsFiles: string[]; prefix: string[] } | string {
    const s = this.slots.get(container);
    if (!s) return `container not found ("${container}")`;
    if (!s.proc?.running) return `container ${container} is not running`;
    return {
      env: s.env ?? { PATH: [...IMAGE_PATH, '/usr/local/bin', '/usr/bin', '/bin'].join(':'), POD_IP: this.podIP ?? '' },
      cwd: s.cwd ?? join(this.ctx.dataDir, 'pods', this.uid, 'containers', container),
      procsFiles: this.cgroup?.procsFiles ?? [],
      // The container's mount namespace, so that its volumes are where it sees them.
      prefix: s.mounted ? ['nsenter', '-t', String(s.proc.pid), '-m', '--'] : [],
    };
  }

  /** What `kubectl attach` joins: the container's running main process and its stdin settings. */
  attachTarget(container: string): AttachTarget | string {
    const s = this.slots.get(container);
    if (!s) return `container not found ("${container}")`;
    if (!s.proc?.running) return `container ${container} is not running`;
    const spec = s.spec as Container & { stdin?: boolean; stdinOnce?: boolean };
    return { proc: s.proc, stdin: spec.stdin === true, stdinOnce: spec.stdinOnce === true };
  }

  /** Where `kubectl port-forward` connects: the pod's IP (its containers bind their ports there). */
  portForwardTarget(): { podIP: string; pod: string } | string {
    if (!this.podIP || !this.pod) return 'the pod has no IP address yet';
    return { podIP: this.podIP, pod: this.pod.metadata.name };
  }

  /** The pod's namespace and name, once known. */
  get podRef(): { namespace: string; name: string } | undefined {
    return this.pod ? { namespace: this.pod.metadata.namespace ?? 'default', name: this.pod.metadata.name } : undefined;
  }

  /** The running container processes (for logs, metrics and tests). */
  processes(): { container: string; pid: number; logFile: string }[] {
    return [...this.slots.values()].filter((s) => s.proc?.running).map((s) => ({ container: s.spec.name, pid: s.proc!.pid, logFile: s.proc!.record.logFile }));
  }

  private schedule(delayMs: number): void {
    if (this.done) return;
    if (delayMs <= 0) {
      if (this.syncing) {
        this.pending = true;
        return;
      }
      void this.run();
      return;
    }
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.schedule(0), delayMs);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    this.syncing = true;
    try {
      do {
        this.pending = false;
        try {
          await this.sync();
        } catch (e) {
          this.ctx.log.warn({ pod: this.name(), err: (e as Error).message }, 'pod sync failed; retrying');
          this.schedule(1000);
        }
      } while (this.pending && !this.done);
    } finally {
      this.syncing = false;
    }
  }

  private name(): string {
    return this.pod ? `${this.pod.metadata.namespace}/${this.pod.metadata.name}` : this.uid;
  }

  private slotsFor(pod: Pod): { init: Slot[]; main: Slot[] } {
    const make = (c: Container, init: boolean): Slot => {
      let s = this.slots.get(c.name);
      if (!s) {
        type Prev = { name: string; restartCount: number; state?: unknown; lastState?: unknown };
        const prevAll = [...(pod.status?.containerStatuses ?? []), ...((pod.status?.initContainerStatuses ?? []) as Prev[])] as Prev[];
        const prev = prevAll.find((x) => x.name === c.name);
        s = {
          spec: c, init, backoffMs: 0, probes: [],
          state: {
            name: c.name, image: c.image ?? '', restartCount: prev?.restartCount ?? 0, ready: false, started: false,
            // A sidecar the API shows as having run was past the init sequence before an agent restart.
            ...(init && isSidecar(c) ? { restartable: true, everStarted: !!prev && (prev.restartCount > 0 || !!(prev as { started?: boolean }).started) } : {}),
          },
        };
        const adopted = this.ctx.adopted.get(this.uid)?.get(c.name);
        if (adopted) {
          this.ctx.adopted.get(this.uid)!.delete(c.name);
          this.ctx.counters.adoptions++;
          s.state.restartCount = adopted.record.restartCount;
          this.ensureCgroup(pod);
          s.oomBaseline = this.cgroup?.oomKills();
          this.attach(s, adopted);
        } else if (prev) {
          // Known from the API but not running here (an agent restart): never run it again as if new.
          const st = prev.state as { running?: { startedAt?: string }; terminated?: Terminated; waiting?: { reason: string; message?: string } } | undefined;
          s.state.lastTerminated = (prev.lastState as { terminated?: Terminated } | undefined)?.terminated;
          if (st?.terminated) s.state.terminated = st.terminated;
          else if (st?.running) {
            s.state.terminated = { exitCode: 137, reason: 'ContainerStatusUnknown', message: 'The container could not be located when the node agent restarted', startedAt: st.running.startedAt ?? iso(), finishedAt: iso() };
            s.lastExitMs = Date.now();
          } else if (st?.waiting && s.state.lastTerminated) {
            s.state.waiting = st.waiting;
            s.backoffMs = this.ctx.backoff.initialMs;
          }
        }
        this.slots.set(c.name, s);
      }
      return s;
    };
    return {
      init: ((pod.spec?.initContainers ?? []) as Container[]).map((c) => make(c, true)),
      main: (pod.spec?.containers ?? []).map((c) => make(c, false)),
    };
  }

  private attach(s: Slot, proc: ContainerProcess): void {
    s.proc = proc;
    s.lastStartMs = Date.parse(proc.record.startedAt);
    s.state.running = { startedAt: iso(new Date(proc.record.startedAt)), containerID: `process://${proc.pid}` };
    s.state.waiting = undefined;
    s.state.terminated = undefined;
    this.ctx.logs.watch(proc.record.logFile);
    void proc.exited.then((exit) => this.onExit(s, proc, exit));
    this.startProbes(s, proc);
  }

  private event(type: 'Normal' | 'Warning', reason: string, message: string): void {
    if (this.pod) this.ctx.recorder.event({ ...this.pod, kind: 'Pod', apiVersion: 'v1' }, type, reason, message);
  }

  /**
   * A container run's probes. Without a startup probe it is started at once;
   * without a readiness probe it is ready once started. Liveness and
   * readiness wait for startup; a failed liveness or startup probe kills the
   * container (its restartPolicy then decides).
   */
  private startProbes(s: Slot, proc: ContainerProcess): void {
    for (const w of s.probes) w.stop();
    s.probes = [];
    const spec = s.spec as Container & { startupProbe?: ProbeSpec; livenessProbe?: ProbeSpec; readinessProbe?: ProbeSpec };
    const probes = s.init && !isSidecar(s.spec) ? {} : { startup: spec.startupProbe, liveness: spec.livenessProbe, readiness: spec.readinessProbe };
    s.state.started = !probes.startup;
    if (s.state.started) s.state.everStarted = true;
    s.state.ready = s.state.started && !probes.readiness;
    const label: Record<ProbeKind, string> = { startup: 'Startup', liveness: 'Liveness', readiness: 'Readiness' };
    const target = () => ({
      podIP: this.podIP ?? '', ports: s.spec.ports ?? [], cwd: s.cwd ?? join(this.ctx.dataDir, 'pods', this.uid, 'containers', s.spec.name),
      env: s.env ?? { PATH: [...IMAGE_PATH, '/usr/local/bin', '/usr/bin', '/bin'].join(':'), POD_IP: this.podIP ?? '' },
    });
    for (const kind of ['startup', 'liveness', 'readiness'] as const) {
      const p = probes[kind];
      if (!p) continue;
      const w = new ProbeWorker(kind, p, {
        target,
        gate: kind === 'startup' ? undefined : () => s.state.started,
        onFailure: (_w, output) => this.event('Warning', 'Unhealthy', `${label[kind]} probe failed: ${output}`),
        onResult: (_w, ok) => {
          if (s.proc !== proc || !proc.running) return;
          if (kind === 'readiness') s.state.ready = ok && s.state.started;
          else if (kind === 'startup' && ok) {
            s.state.started = true;
            s.state.everStarted = true;
            s.state.ready = !probes.readiness;
          } else if (!ok) {
            this.event('Normal', 'Killing', `Container ${s.spec.name} failed ${kind} probe, will be restarted`);
            const grace = p.terminationGracePeriodSeconds ?? (this.pod?.spec as { terminationGracePeriodSeconds?: number } | undefined)?.terminationGracePeriodSeconds ?? 30;
            void proc.stop(grace * 1000);
          }
          this.schedule(0);
        },
      });
      s.probes.push(w);
      w.start();
    }
  }

  private onExit(s: Slot, proc: ContainerProcess, exit: ExitInfo): void {
    this.ctx.logs.unwatch(proc.record.logFile);
    if (s.proc !== proc) return;
    const term: Terminated = exit.code === undefined
      ? { exitCode: 137, reason: 'ContainerStatusUnknown', message: 'The process exited while the node agent was not its parent (agent restart): its exit code is unknown', startedAt: s.state.running?.startedAt ?? iso(), finishedAt: iso(exit.finishedAt) }
      : { exitCode: exit.code, reason: exit.code === 0 ? 'Completed' : 'Error', startedAt: s.state.running?.startedAt ?? iso(), finishedAt: iso(exit.finishedAt), containerID: `process://${proc.pid}` };
    if (exit.signal) term.signal = exit.code! - 128;
    if (term.exitCode !== 0 && term.reason === 'Error') {
      const clash = addressInUse(proc.record.logFile);
      if (clash) term.message = clash;
    }
    const oom = term.exitCode === 137 && (s.oomByPolling || (this.cgroup !== undefined && this.cgroup.oomKills() > (s.oomBaseline ?? 0)));
    if (oom) {
      term.reason = 'OOMKilled';
      delete term.message;
    }
    s.oomByPolling = false;
    for (const w of s.probes) w.stop();
    s.probes = [];
    s.state.running = undefined;
    s.state.terminated = term;
    s.state.ready = false;
    s.state.started = false;
    s.lastExitMs = Date.now();
    // A run long enough forgets the back-off (the kubelet: 2 × the maximum back-off).
    if (s.lastStartMs && Date.now() - s.lastStartMs > 2 * this.ctx.backoff.maxMs) s.backoffMs = 0;
    this.ctx.log.info({ pod: this.name(), container: s.spec.name, exitCode: term.exitCode, reason: term.reason }, 'container exited');
    this.schedule(0);
  }

  private async sync(): Promise<void> {
    const pod = this.pod;
    if (!pod) return;
    if (pod.metadata.deletionTimestamp) {
      this.terminating ??= this.terminate(pod);
      return this.terminating;
    }
    this.startTime ??= (pod.status?.startTime as string | undefined) ?? iso();
    if (!this.podIP) {
      const alloc = await this.ctx.podIPs();
      const have = pod.status?.podIP;
      this.podIP = have && alloc.reserve(this.uid, have) ? have : alloc.allocate(this.uid);
    }
    this.startTimes.synced ??= Date.now();
    const { init, main } = this.slotsFor(pod);
    // The periodic sync refreshes the volumes already set up (a changed ConfigMap or Secret reaches the files).
    if (this.volumes && [...this.slots.values()].some((x) => x.proc?.running)) {
      this.volumes = await this.volumePod(pod).then((vp) => preparePodVolumes(vp, join(this.ctx.dataDir, 'pods', this.uid), this.ctx.volumes)).catch((e) => {
        this.ctx.log.warn({ pod: this.name(), err: (e as Error).message }, 'refreshing volumes failed');
        return this.volumes;
      });
    }
    // The kubelet's eviction manager: a disk-backed emptyDir over its sizeLimit evicts the pod (checked at every sync).
    if (!this.evicted && this.volumes) {
      const over = emptyDirOverLimit(pod, this.volumes);
      if (over) {
        this.evicted = over;
        this.event('Warning', 'Evicted', over);
        this.ctx.log.info({ pod: this.name(), reason: over }, 'evicting the pod');
      }
    }
    if (this.evicted) {
      const grace = ((pod.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30) * 1000;
      await Promise.all([...init, ...main].filter((x) => x.proc?.running).map((x) => x.proc!.stop(grace)));
      this.releaseCgroup();
      await this.writeStatus(pod, init, main);
      return;
    }
    const phase = podPhase(this.view(pod, init, main));
    if (phase === 'Succeeded' || phase === 'Failed') {
      // The regular containers are done for good: the sidecars stop too.
      await Promise.all(init.filter((x) => x.proc?.running).map((x) => x.proc!.stop(((pod.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30) * 1000)));
      this.releaseCgroup();
      await this.writeStatus(pod, init, main);
      return;
    }
    const policy = pod.spec?.restartPolicy ?? 'Always';
    // Init containers, one at a time, in order. A sidecar (restartPolicy
    // Always) is started and waited for until it is started (its startup
    // probe passed), then keeps running while the next ones go on.
    let initDone = true;
    for (const s of init) {
      if (isSidecar(s.spec)) {
        if (s.proc?.running) {
          if (s.state.started) continue;
          initDone = false;
          break;
        }
        if (s.state.started || s.state.restartCount > 0 || s.state.lastTerminated || s.state.terminated) {
          // A sidecar that was up and exited: restarted (with back-off) whatever the pod's restartPolicy.
          await this.restartOrWait(pod, s);
          if (initializedOnce(s)) continue;
        } else {
          await this.startContainer(pod, s);
          // Started at once when it has no startup probe: look again right away to go on with the sequence.
          this.schedule(0);
        }
        initDone = false;
        break;
      }
      if (s.state.terminated?.exitCode === 0 && !s.proc?.running) continue;
      initDone = false;
      if (s.proc?.running) break;
      if (s.state.terminated) {
        if (policy === 'Never') break;
        await this.restartOrWait(pod, s);
      } else {
        await this.startContainer(pod, s);
      }
      break;
    }
    if (initDone) {
      for (const s of main) {
        if (s.proc?.running) continue;
        if (!s.state.terminated) {
          if (!s.state.lastTerminated || !s.state.waiting || s.state.waiting.reason !== 'CrashLoopBackOff') await this.startContainer(pod, s);
          else await this.restartOrWait(pod, s);
          continue;
        }
        const restart = policy === 'Always' || (policy === 'OnFailure' && s.state.terminated.exitCode !== 0);
        if (restart) await this.restartOrWait(pod, s);
      }
    }
    await this.writeStatus(pod, init, main);
  }

  /** Restarts an exited container now, or waits out its back-off (CrashLoopBackOff). */
  private async restartOrWait(pod: Pod, s: Slot): Promise<void> {
    const last = s.state.terminated ?? s.state.lastTerminated;
    const finished = last ? Date.parse(last.finishedAt) : 0;
    // finishedAt has second precision: the wait is measured from the exit we saw.
    const since = Date.now() - Math.max(finished, s.lastExitMs ?? 0);
    if (s.backoffMs > 0 && since < s.backoffMs) {
      const left = s.backoffMs - since;
      if (s.state.terminated) s.state.lastTerminated = s.state.terminated;
      s.state.terminated = undefined;
      s.state.waiting = {
        reason: 'CrashLoopBackOff',
        message: `back-off ${Math.round(s.backoffMs / 1000)}s restarting failed container=${s.spec.name} pod=${pod.metadata.name}_${pod.metadata.namespace}(${this.uid})`,
      };
      this.event('Warning', 'BackOff', `Back-off restarting failed container ${s.spec.name} in pod ${pod.metadata.name}_${pod.metadata.namespace}(${this.uid})`);
      this.schedule(left + 10);
      return;
    }
    s.backoffMs = s.backoffMs ? Math.min(s.backoffMs * 2, this.ctx.backoff.maxMs) : this.ctx.backoff.initialMs;
    if (s.state.terminated) s.state.lastTerminated = s.state.terminated;
    s.state.terminated = undefined;
    s.state.restartCount++;
    this.ctx.counters.restarts++;
    await this.startContainer(pod, s);
  }

  private async startContainer(pod: Pod, s: Slot): Promise<void> {
    const c = s.spec as Container & { workingDir?: string };
    const cmd = containerArgv(c);
    if ('reason' in cmd) {
      s.state.waiting = { reason: cmd.reason, message: cmd.message };
      return;
    }
    let kenv: Record<string, string>;
    try {
      kenv = await containerEnv({ ...pod, status: { ...pod.status, podIP: this.podIP, hostIP: this.ctx.hostIP } }, c as never, this.ctx.env);
    } catch (e) {
      if (!(e instanceof ContainerConfigError)) throw e;
      s.state.waiting = { reason: 'CreateContainerConfigError', message: e.message };
      this.schedule(2000);
      return;
    }
    const podDir = join(this.ctx.dataDir, 'pods', this.uid);
    const port = c.ports?.[0]?.containerPort;
    const env: Record<string, string> = {
      PATH: [...IMAGE_PATH, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'].join(':'),
      HOSTNAME: pod.metadata.name,
      HOME: join(podDir, 'containers', c.name),
      POD_IP: this.podIP!,
      ...(port ? { PORT: String(port) } : {}),
      ...kenv,
    };
    const argv = cmd.argv.map((a) => expand(a, (n) => env[n]));
    const cwd = c.workingDir ? c.workingDir : join(podDir, 'containers', c.name);
    let mounts = '';
    try {
      const vpod = await this.volumePod(pod);
      this.volumes ??= await preparePodVolumes(vpod, podDir, this.ctx.volumes);
      const vc = [...vpod.spec!.containers, ...((vpod.spec!.initContainers ?? []) as Container[])].find((x) => x.name === c.name) ?? c;
      const m = containerMounts(vc as never, this.volumes);
      // /etc/resolv.conf and /etc/hosts first, so a volume mounted over /etc wins as in Kubernetes.
      const dnsFiles = this.ctx.clusterDns ? writePodDnsFiles(podDir, pod as never, this.podIP!, this.ctx.clusterDns) : [];
      if (m.length || dnsFiles.length) mounts = mountScript([...dnsFiles, ...m]);
    } catch (e) {
      if (!(e instanceof ContainerConfigError)) throw e;
      // As the kubelet: the pod stays ContainerCreating, with a FailedMount event, and is retried.
      s.state.waiting = { reason: 'ContainerCreating', message: e.message };
      this.event('Warning', 'FailedMount', e.message);
      this.schedule(2000);
      return;
    }
    s.mounted = !!mounts;
    const cgroup = this.ensureCgroup(pod);
    if ((cgroup || mounts) && !resolvable(argv[0], env.PATH)) {
      // Started through the cgroup-joining shell, a missing program would only show as exit 127: say it here.
      const now = iso();
      s.state.terminated = { exitCode: 128, reason: 'StartError', message: `failed to start ${JSON.stringify(argv[0])}: executable file not found in $PATH`, startedAt: now, finishedAt: now };
      s.lastExitMs = Date.now();
      this.schedule(0);
      return;
    }
    s.oomBaseline = cgroup?.oomKills();
    s.env = env;
    s.cwd = cwd;
    this.startTimes.spawning ??= Date.now();
    try {
      const proc = await ContainerProcess.start({
        argv: cgroup || mounts ? inCgroups(cgroup?.procsFiles ?? [], argv, mounts) : argv, env, cwd,
        logFile: join(podDir, 'logs', c.name, `${s.state.restartCount}.log`),
        recordFile: join(podDir, 'records', `${c.name}.json`),
        podUid: this.uid, container: c.name, restartCount: s.state.restartCount,
        stdin: (c as { stdin?: boolean }).stdin ? { fifo: join(podDir, 'records', `${c.name}.stdin`), once: (c as { stdinOnce?: boolean }).stdinOnce === true } : undefined,
      });
      this.ctx.counters.starts++;
      this.startTimes.spawned ??= Date.now();
      this.attach(s, proc);
      this.event('Normal', 'Started', `Started container ${c.name}`);
      this.ctx.log.info({ pod: this.name(), container: c.name, pid: proc.pid, restartCount: s.state.restartCount }, 'container started');
    } catch (e) {
      // The kubelet's reason when the runtime cannot start the process (no such program, …).
      const now = iso();
      s.state.terminated = { exitCode: 128, reason: 'StartError', message: `failed to start ${JSON.stringify(argv[0])}: ${(e as Error).message}`, startedAt: now, finishedAt: now };
      s.lastExitMs = Date.now();
      this.schedule(0);
    }
  }

  /** The pod's cgroup (created at its first container start; re-opened after an agent restart). */
  private ensureCgroup(pod: Pod): PodCgroup | undefined {
    if (this.cgroup || this.cgroupFailed) return this.cgroup;
    const res = podResources(pod);
    try {
      this.cgroup = this.ctx.cgroups.create(this.uid, res);
    } catch (e) {
      this.cgroupFailed = true;
      this.ctx.log.warn({ pod: this.name(), err: (e as Error).message }, 'pod cgroup could not be created: memory limits fall back to RSS polling');
    }
    if (!this.cgroup && res.memoryLimit !== undefined && !this.rssTimer) {
      const limit = res.memoryLimit;
      this.rssTimer = setInterval(() => this.pollRss(limit), 1000);
      this.rssTimer.unref();
    }
    return this.cgroup;
  }

  /** The fallback without a cgroup: over the limit, the largest container is killed as the OOM killer would. */
  private pollRss(limit: number): void {
    const running = [...this.slots.values()].filter((s) => s.proc?.running);
    const sizes = running.map((s) => ({ s, rss: processGroupRss(s.proc!.pid) }));
    const total = sizes.reduce((a, x) => a + x.rss, 0);
    if (total <= limit || !sizes.length) return;
    const victim = sizes.sort((a, b) => b.rss - a.rss)[0];
    victim.s.oomByPolling = true;
    this.ctx.log.warn({ pod: this.name(), container: victim.s.spec.name, rss: total, limit }, 'over the memory limit (RSS polling): killing');
    victim.s.proc!.signal('SIGKILL');
  }

  /** Stops RSS polling and removes the pod cgroup once no process is left in it. */
  private releaseCgroup(): void {
    clearInterval(this.rssTimer);
    this.rssTimer = undefined;
    if (this.cgroup && this.cgroup.remove()) this.cgroup = undefined;
  }

  private view(pod: Pod, init: Slot[], main: Slot[]) {
    return { pod, init: init.map((s) => s.state), containers: main.map((s) => s.state), hostIP: this.ctx.hostIP, podIP: this.podIP, startTime: this.startTime ?? iso() };
  }

  /** Writes the status when it differs from the last one written. */
  private async writeStatus(pod: Pod, init: Slot[], main: Slot[]): Promise<void> {
    let status = podStatus(this.view(pod, init, main), this.lastWritten ?? pod.status, iso());
    // Evicted, as the kubelet reports it: Failed with reason Evicted and the why, and a DisruptionTarget condition.
    if (this.evicted) {
      const prevConds = ((status as { conditions?: { type: string }[] }).conditions ?? []).filter((c) => c.type !== 'DisruptionTarget');
      const was = (this.lastWritten?.conditions as { type: string; lastTransitionTime?: string }[] | undefined)?.find((c) => c.type === 'DisruptionTarget');
      status = {
        ...status, phase: 'Failed', reason: 'Evicted', message: this.evicted,
        conditions: [...prevConds, { type: 'DisruptionTarget', status: 'True', reason: 'TerminationByKubelet', message: this.evicted, lastTransitionTime: was?.lastTransitionTime ?? iso() }],
      };
    }
    const text = JSON.stringify(status);
    // Another writer (the node lifecycle controller marking pods not ready) may have changed the API's copy: then the kubelet writes its own again.
    const conds = (x: unknown) => ((x as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []).filter((c) => c.type === 'Ready' || c.type === 'ContainersReady').map((c) => `${c.type}=${c.status}`).sort().join();
    if (text === this.lastStatus && conds(pod.status) === conds(status)) return;
    const ready = (status as { conditions?: { type: string; status: string }[] }).conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
    if (ready) this.startTimes.ready ??= Date.now();
    try {
      await this.ctx.client.patch(resourcePath(PODS, pod.metadata.namespace, pod.metadata.name, 'status'), { status }, 'application/merge-patch+json');
      this.lastStatus = text;
      this.lastWritten = status as Record<string, any>;
      this.ctx.counters.statusWrites++;
      if (ready) this.logStart();
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404) return;
      throw e;
    }
  }

  private lastWritten?: Record<string, any>;

  /** Once, when the first Ready status is written: how long each phase of the start took. */
  private logStart(): void {
    const t = this.startTimes;
    if (t.logged || !t.seen || !t.synced || !t.spawning || !t.spawned || !t.ready) return;
    t.logged = true;
    const now = Date.now();
    this.ctx.log.info({
      pod: this.name(), seenAt: t.seen, startPhasesMs: { queued: t.synced - t.seen, prepare: t.spawning - t.synced, spawn: t.spawned - t.spawning, ready: t.ready - t.spawned, statusWrite: now - t.ready, total: now - t.seen },
    }, 'pod started');
  }

  /** The ServiceAccount's automountServiceAccountToken, looked up once per pod. */
  private automount?: Promise<boolean | undefined>;

  /** The pod with the service-account volume it gets (runtime/volumes.ts). */
  private volumePod(pod: Pod): Promise<Pod> {
    return withServiceAccountVolume(pod, {
      ...this.ctx.volumes,
      automount: (ns, name) => {
        this.automount ??= (this.ctx.volumes.automount?.(ns, name) ?? Promise.resolve(undefined)).catch((e) => {
          this.automount = undefined;
          throw e;
        });
        return this.automount;
      },
    });
  }

  /** Stops every container (preStop, SIGTERM, grace, SIGKILL), then removes the pod object. */
  private async terminate(pod: Pod): Promise<void> {
    clearTimeout(this.timer);
    const m = pod.metadata as Pod['metadata'] & { deletionGracePeriodSeconds?: number };
    const specGrace = (pod.spec as { terminationGracePeriodSeconds?: number } | undefined)?.terminationGracePeriodSeconds;
    // Removed from the API without a grace period (forced): a short one still lets processes exit cleanly.
    const graceS = this.removedFromApi ? Math.min(specGrace ?? 30, 2) : (m.deletionGracePeriodSeconds ?? specGrace ?? 30);
    const deadline = Date.now() + graceS * 1000;
    // Adopted processes of containers never synced (an agent restart) are stopped too.
    this.slotsFor(pod);
    for (const [, proc] of this.ctx.adopted.get(this.uid) ?? []) void proc.stop(0);
    const running = [...this.slots.values()].filter((s) => s.proc?.running);
    await Promise.all(running.map(async (s) => {
      const hook = (s.spec as { lifecycle?: { preStop?: Record<string, any> } }).lifecycle?.preStop;
      if (hook) await this.runHook(hook, s, deadline).catch((e) => this.ctx.log.warn({ pod: this.name(), container: s.spec.name, err: (e as Error).message }, 'preStop hook failed'));
      this.ctx.counters.kills++;
      await s.proc!.stop(Math.max(0, deadline - Date.now()));
    }));
    this.ctx.log.info({ pod: this.name(), graceSeconds: graceS }, 'pod stopped');
    this.releaseCgroup();
    cleanupPodVolumes(join(this.ctx.dataDir, 'pods', this.uid));
    (await this.ctx.podIPs().catch(() => undefined))?.release(this.uid);
    if (!this.removedFromApi) {
      await this.ctx.client.delete(resourcePath(PODS, m.namespace, m.name), { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: this.uid } })
        .catch((e) => {
          if (!(e instanceof ApiClientError && (e.code === 404 || e.code === 409))) throw e;
        });
    }
    this.done = true;
    this.ctx.onDone(this.uid);
  }

  /** A preStop hook: exec in the container's environment, or an HTTP GET to the pod; bounded by the grace period. */
  private async runHook(hook: Record<string, any>, s: Slot, deadline: number): Promise<void> {
    const timeout = Math.max(0, deadline - Date.now());
    if (hook.exec?.command?.length) {
      const [cmd, ...args] = hook.exec.command as string[];
      await new Promise<void>((resolve) => {
        const child = spawn(cmd, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', POD_IP: this.podIP ?? '' }, stdio: 'ignore', timeout, killSignal: 'SIGKILL' });
        child.once('exit', () => resolve());
        child.once('error', () => resolve());
      });
    } else if (hook.httpGet) {
      const g = hook.httpGet;
      const port = typeof g.port === 'number' ? g.port : s.spec.ports?.find((p) => p.name === g.port)?.containerPort;
      const host = g.host ?? this.podIP;
      const r = await request(`${(g.scheme ?? 'HTTP').toLowerCase()}://${host}:${port}${g.path ?? '/'}`, { headersTimeout: timeout, bodyTimeout: timeout });
      await r.body.dump();
    }
  }
}

