// The node agent (Flotilla's kubelet) for one node: registers the Node,
// renews its Lease, keeps its status current, and runs the pods bound to it —
// seen through an informer that LISTs and WATCHes only this node's pods
// through the API (fieldSelector=spec.nodeName) — with one pod worker each.
// At start it adopts the container processes a previous run of the agent
// left (their records on disk) and, once its informer has synced, stops
// those whose pods are gone.
import type { ClusterDns } from './runtime/dns-config.ts';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import { Informer, type Logger } from '../informer/informer.ts';
import type { ConfigMap, Pod, Secret, Service } from '../informer/types.ts';
import { NodeLease } from './lease.ts';
import { NodeStatusManager } from './node.ts';
import { type Measurements, type ResourceList } from './node-status.ts';
import { PodIPAllocator } from './pod-ip.ts';
import { type BackoffPolicy, DEFAULT_BACKOFF, PodWorker, type WorkerContext } from './pod-worker.ts';
import { ContainerConfigError, type EnvSources } from './runtime/env.ts';
import { type VolumeSources, cleanupPodVolumes } from './runtime/volumes.ts';
import { ServiceAccountTokenManager } from './service-account-token.ts';
import { EventBroadcaster } from '../recorder/recorder.ts';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NatsConnection } from 'nats';
import { connectNats } from '../informer/nats.ts';
import { MetricsPublisher } from './metrics.ts';
import type { Duplex } from 'node:stream';
import { serveAttach } from './attach.ts';
import { STATUS_REASONS, httpError, serveExec } from './exec.ts';
import type { EndpointAuthorizer } from './endpoint-auth.ts';
import { servePortForward } from './port-forward.ts';
import { LogObserver, LogRequestError, type LogRotation, containerLogFiles, parseLogQuery, serveLogFile } from './logs.ts';
import { Cgroups } from './runtime/cgroups.ts';
import { ContainerProcess } from './runtime/process.ts';

const PODS = resolveKind('pods')!;
const CONFIGMAPS = resolveKind('configmaps')!;
const SECRETS = resolveKind('secrets')!;
const SERVICES = resolveKind('services')!;

export interface NodeAgentOptions {
  client: ApiClient;
  name: string;
  address: string;
  dataDir: string;
  labels: Record<string, string>;
  capacity: ResourceList;
  allocatable: ResourceList;
  /** Allocatable in base units (downward API defaults). */
  allocatableValues: Record<string, number>;
  nodeInfo: Record<string, string>;
  kubeletPort: number;
  podCIDR?: string;
  /** The cluster DNS pods resolve through (address and domain). */
  clusterDns?: ClusterDns;
  measure: () => Measurements;
  backoff?: BackoffPolicy;
  statusIntervalMs?: number;
  leaseIntervalMs?: number;
  /** NATS URL(s) for resource metrics (metrics.pods.<node>); none: no metrics are published. */
  nats?: string;
  metricsIntervalMs?: number;
  /** Container log rotation (default 10Mi, 5 files, as the kubelet). */
  logRotation?: LogRotation;
  /** Re-sync every pod this often (the kubelet's --sync-frequency, 1m). */
  syncFrequencyMs?: number;
  /** Who may use the endpoints (endpoint-auth.ts); none: anyone who reaches the port. */
  authorizeEndpoint?: EndpointAuthorizer;
  log: Logger;
}

export class NodeAgent {
  readonly node: NodeStatusManager;
  lease?: NodeLease;
  readonly pods: Informer<Pod>;
  /** Every Service, for the containers' service variables (the kubelet watches them too). */
  readonly services: Informer<Service>;
  readonly workers = new Map<string, PodWorker>();
  readonly counters = { starts: 0, restarts: 0, adoptions: 0, statusWrites: 0, kills: 0, orphansKilled: 0 };
  private readonly adopted = new Map<string, Map<string, ContainerProcess>>();
  private allocator?: Promise<PodIPAllocator>;
  private readonly ctx: WorkerContext;
  private readonly abort = new AbortController();
  readonly cgroups: Cgroups;
  readonly events: EventBroadcaster;
  readonly logs: LogObserver;
  metrics?: MetricsPublisher;
  private nc?: NatsConnection;

  constructor(private readonly o: NodeAgentOptions) {
    this.cgroups = Cgroups.detect();
    this.logs = new LogObserver(o.logRotation);
    this.events = new EventBroadcaster({ client: o.client, host: o.name, logger: o.log });
    this.node = new NodeStatusManager({
      client: o.client, name: o.name, address: o.address, labels: o.labels, capacity: o.capacity, allocatable: o.allocatable,
      nodeInfo: o.nodeInfo, kubeletPort: o.kubeletPort, podCIDR: o.podCIDR, measure: o.measure, readyNote: () => this.cgroups.describe(), statusIntervalMs: o.statusIntervalMs, log: o.log,
    });
    this.pods = new Informer<Pod>({
      client: o.client, kind: PODS, source: 'watch', fieldSelector: `spec.nodeName=${o.name}`, name: `pods@${o.name}`, logger: o.log,
      // The kubelet's --sync-frequency: every pod is synced again this often (volumes refreshed, status checked).
      resyncMs: o.syncFrequencyMs ?? 60_000,
    });
    this.services = new Informer<Service>({ client: o.client, kind: SERVICES, source: 'watch', name: `services@${o.name}`, logger: o.log });
    this.ctx = {
      client: o.client, nodeName: o.name, hostIP: o.address, dataDir: o.dataDir, env: this.envSources(), volumes: this.volumeSources(),
      clusterDns: o.clusterDns,
      podIPs: () => (this.allocator ??= this.node.waitForPodCIDR(this.abort.signal).then((c) => new PodIPAllocator(c))),
      backoff: o.backoff ?? DEFAULT_BACKOFF, cgroups: this.cgroups, logs: this.logs, recorder: this.events.recorder('kubelet'), log: o.log, adopted: this.adopted,
      onDone: (uid) => {
        this.workers.delete(uid);
        this.tokens?.forget(uid);
        // The pod is gone from the API and its processes have exited: its directory (logs included) goes, as the kubelet's does.
        cleanupPodVolumes(join(o.dataDir, 'pods', uid));
        rmSync(join(o.dataDir, 'pods', uid), { recursive: true, force: true });
      },
      counters: this.counters,
    };
  }

  async start(): Promise<void> {
    const node = await this.node.register();
    this.lease = new NodeLease({ client: this.o.client, node: this.o.name, nodeUid: node.metadata.uid, intervalMs: this.o.leaseIntervalMs, log: this.o.log });
    this.lease.start();
    this.node.start();
    this.adoptRecorded();
    this.pods.addEventHandler({
      onAdd: (p) => this.worker(p)?.update(p),
      onUpdate: (_o, p) => this.worker(p)?.update(p),
      onDelete: (p) => this.workers.get(p.metadata.uid ?? '')?.update(undefined),
    });
    await this.services.start();
    await this.pods.start();
    this.killOrphans();
    if (this.o.nats) {
      this.nc = await connectNats(this.o.nats, `flotilla-agent-${this.o.name}`);
      this.metrics = new MetricsPublisher({
        nc: this.nc, node: this.o.name, intervalMs: this.o.metricsIntervalMs ?? 15_000, log: this.o.log,
        containers: () => [...this.workers.values()].flatMap((w) => {
          const ref = w.podRef;
          return ref ? w.processes().map((p) => ({ namespace: ref.namespace, pod: ref.name, container: p.container, pgid: p.pid })) : [];
        }),
      });
      this.metrics.start();
    }
  }

  /**
   * Stops every container this agent runs (for `flotilla up`, whose stop
   * should leave nothing running); the records go with them, so the next
   * run finds the pods' containers gone and restarts them per policy.
   */
  async stopContainers(graceMs: number): Promise<void> {
    await Promise.all([...this.workers.values()].map((w) => w.stopProcesses(graceMs)));
    for (const [uid, procs] of this.adopted) {
      await Promise.all([...procs.values()].map((p) => p.stop(graceMs)));
      this.cgroups.remove(uid);
    }
  }

  /** Stops watching and renewing; the containers keep running (as the kubelet's do), to be adopted by the next run. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.metrics?.stop();
    await this.nc?.close().catch(() => {});
    this.lease?.stop();
    this.node.stop();
    await this.pods.stop();
    await this.services.stop();
    await this.events.stop();
    this.logs.stop();
  }

  /**
   * The kubelet's streaming endpoints, upgraded connections the API server
   * proxies pods/exec, pods/attach and pods/portforward to:
   * /exec/{namespace}/{pod}/{container}?command=…, /attach/{namespace}/{pod}/{container},
   * /portForward/{namespace}/{pod}.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://agent');
    const m = /^\/(exec|attach)\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname) ?? /^\/(portForward)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (!m) return httpError(socket, 404, `no such endpoint: ${url.pathname}`);
    const refused = this.o.authorizeEndpoint?.(req);
    if (refused) return httpError(socket, refused.code, refused.message);
    if (head.length) socket.unshift(head);
    let ns: string, name: string, container: string;
    try {
      [ns, name, container] = m.slice(2).map(decodeURIComponent);
    } catch {
      return httpError(socket, 400, `malformed path ${url.pathname}`);
    }
    const pod = this.pods.get(ns, name);
    const worker = pod?.metadata.uid ? this.workers.get(pod.metadata.uid) : undefined;
    if (!worker) return httpError(socket, 404, `pods "${name}" not found`);
    if (m[1] === 'portForward') {
      const t = worker.portForwardTarget();
      if (typeof t === 'string') return httpError(socket, 400, t);
      return servePortForward(req, socket, { ...t, uid: worker.uid, log: this.o.log });
    }
    if (m[1] === 'attach') {
      const t = worker.attachTarget(container);
      if (typeof t === 'string') return httpError(socket, 400, t);
      return serveAttach(req, socket, url.searchParams, t);
    }
    const target = worker.execTarget(container);
    if (typeof target === 'string') return httpError(socket, 400, target);
    serveExec(req, socket, url.searchParams, target);
  }

  /**
   * The kubelet's /containerLogs/{namespace}/{pod}/{container} (the API
   * server proxies pods/log here); true when the path was one of the agent's.
   */
  handleHttp(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://agent');
    const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (!m) return false;
    const fail = (code: number, message: string) => {
      if (res.headersSent) return void res.end();
      const reason = STATUS_REASONS[code] ?? 'InternalError';
      res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code }));
    };
    const refused = this.o.authorizeEndpoint?.(req);
    if (refused) {
      fail(refused.code, refused.message);
      return true;
    }
    let ns: string, name: string, container: string;
    try {
      [ns, name, container] = m.slice(1).map(decodeURIComponent);
    } catch {
      fail(400, `malformed path ${url.pathname}`);
      return true;
    }
    void (async () => {
      const q = parseLogQuery(url.searchParams);
      const pod = this.pods.get(ns, name);
      if (!pod?.metadata.uid) throw new LogRequestError(404, `pods "${name}" not found`);
      const files = containerLogFiles(join(this.o.dataDir, 'pods', pod.metadata.uid, 'logs', container));
      if (!files.length) throw new LogRequestError(400, `container "${container}" in pod "${name}" is waiting to start: ContainerCreating`);
      if (q.previous && files.length < 2) throw new LogRequestError(400, `previous terminated container "${container}" in pod "${name}" not found`);
      const file = q.previous ? files[files.length - 2] : files[files.length - 1];
      const running = () => !q.previous && !!this.workers.get(pod.metadata.uid!)?.processes().some((p) => p.logFile === file);
      await serveLogFile(req, res, file, q, running);
    })().catch((e) => fail(e instanceof LogRequestError ? e.code : 500, (e as Error).message));
    return true;
  }

  private worker(p: Pod): PodWorker | undefined {
    const uid = p.metadata.uid;
    if (!uid) return undefined;
    let w = this.workers.get(uid);
    if (!w) {
      w = new PodWorker(uid, this.ctx);
      this.workers.set(uid, w);
    }
    return w;
  }

  /** Every running process recorded by an earlier run of the agent, by pod uid. */
  private adoptRecorded(): void {
    const podsDir = join(this.o.dataDir, 'pods');
    let uids: string[] = [];
    try {
      uids = readdirSync(podsDir);
    } catch {
      return;
    }
    for (const uid of uids) {
      let files: string[] = [];
      try {
        files = readdirSync(join(podsDir, uid, 'records')).filter((f) => f.endsWith('.json'));
      } catch {
        continue;
      }
      for (const f of files) {
        const proc = ContainerProcess.adopt(join(podsDir, uid, 'records', f));
        if (!proc) continue;
        let m = this.adopted.get(uid);
        if (!m) this.adopted.set(uid, (m = new Map()));
        m.set(proc.record.container, proc);
        this.o.log.info({ podUid: uid, container: proc.record.container, pid: proc.pid }, 'adopted a running container process');
      }
    }
  }

  /** Processes adopted for pods that no longer exist (or no longer run here) are stopped. */
  private killOrphans(): void {
    const live = new Set(this.pods.list().map((p) => p.metadata.uid));
    for (const [uid, procs] of this.adopted) {
      if (live.has(uid)) continue;
      for (const proc of procs.values()) {
        this.counters.orphansKilled++;
        this.o.log.info({ podUid: uid, container: proc.record.container, pid: proc.pid }, 'stopping the process of a pod that is gone');
        void proc.stop(2000).then(() => {
          this.cgroups.remove(uid);
          cleanupPodVolumes(join(this.o.dataDir, 'pods', uid));
        });
      }
      this.adopted.delete(uid);
      rmSync(join(this.o.dataDir, 'pods', uid, 'records'), { recursive: true, force: true });
    }
  }

  /**
   * GETs of the same object that are in flight at once share one request: a
   * burst of pod starts on this node reads the same kube-root-ca.crt,
   * ServiceAccount and ConfigMaps, and each read is a trip through the API
   * (measured: it dominated pod start under a burst). Nothing is cached past
   * the answer, so nothing is staler than a read of one's own.
   */
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly reads = {
    get: <T>(path: string): Promise<T> => {
      let p = this.inflight.get(path) as Promise<T> | undefined;
      if (!p) {
        p = this.o.client.get<T>(path).finally(() => this.inflight.delete(path));
        this.inflight.set(path, p);
      }
      return p;
    },
  };

  /** Pods' ServiceAccount tokens (TokenRequest, refreshed at 80 % of their lifetime). */
  private tokens?: ServiceAccountTokenManager;

  private volumeSources(): VolumeSources {
    const env = this.envSources();
    const c = this.reads;
    return {
      configMap: env.configMap,
      secret: env.secret,
      serviceAccountToken: (pod, projection) => (this.tokens ??= new ServiceAccountTokenManager(this.o.client, this.o.log)).token(pod, projection),
      automount: async (ns, name) => {
        try {
          return (await c.get<{ automountServiceAccountToken?: boolean }>(resourcePath(resolveKind('serviceaccounts')!, ns, name))).automountServiceAccountToken;
        } catch (e) {
          if (e instanceof ApiClientError && e.code === 404) return undefined;
          throw e;
        }
      },
      claimPath: async (ns, claim) => {
        let pvc: { spec?: { volumeName?: string } };
        try {
          pvc = await c.get(resourcePath(resolveKind('persistentvolumeclaims')!, ns, claim));
        } catch (e) {
          if (e instanceof ApiClientError && e.code === 404) throw new ContainerConfigError(`persistentvolumeclaim "${claim}" not found`);
          throw e;
        }
        if (!pvc.spec?.volumeName) throw new ContainerConfigError(`persistentvolumeclaim "${claim}" is not bound`);
        const pv = await c.get<{ spec?: { hostPath?: { path: string }; local?: { path: string } } }>(resourcePath(resolveKind('persistentvolumes')!, '', pvc.spec.volumeName));
        const path = pv.spec?.hostPath?.path ?? pv.spec?.local?.path;
        if (!path) throw new ContainerConfigError(`persistentvolume "${pvc.spec.volumeName}" is neither hostPath nor local: this node agent cannot mount it`);
        mkdirSync(path, { recursive: true });
        return path;
      },
    };
  }

  private envSources(): EnvSources {
    const c = this.reads;
    const getOrUndefined = async <T>(path: string): Promise<T | undefined> => {
      try {
        return await c.get<T>(path);
      } catch (e) {
        if (e instanceof ApiClientError && e.code === 404) return undefined;
        throw e;
      }
    };
    return {
      allocatable: this.o.allocatableValues,
      configMap: async (ns, name) => {
        const cm = await getOrUndefined<ConfigMap>(resourcePath(CONFIGMAPS, ns, name));
        return cm ? { ...cm.data } : undefined;
      },
      secret: async (ns, name) => {
        const s = await getOrUndefined<Secret>(resourcePath(SECRETS, ns, name));
        return s ? Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])) : undefined;
      },
      services: async (ns) => {
        const own = this.services.byNamespace(ns);
        const k = ns === 'default' ? undefined : this.services.get('default', 'kubernetes');
        return k ? [...own, k] : own;
      },
    };
  }
}
