// `flotilla server`: one Raft member and a full API server.
//
//   flotilla server --id s1 --peers s1=127.0.0.1:7201,s2=…,s3=… --api 127.0.0.1:7101 --data DIR [--join]
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import pino from 'pino';
import client from 'prom-client';
import { registerRaftMetrics } from '../raft/metrics.ts';
import { RaftNode } from '../raft/node.ts';
import { RAFT_MEMBER_OPTIONS, loadPeerTls, parseBytes, parsePeers, splitHostPort } from '../raft/peers.ts';
import { Role } from '../raft/types.ts';
import { ApiError } from './errors.ts';
import { MemberDirectory, ensureAdminToken, hashToken } from './http/members.ts';
import { parseTolerationSeconds } from './http/default-toleration-seconds.ts';
import { ApiHttpServer } from './http/server.ts';
import { loadAgentClientTls, loadTls } from '../api/tls-files.ts';
import { agentDialer } from './http/agent-dialer.ts';
import { namespacePrepareForCreate } from './http/admission.ts';
import { PRIORITY_CLASSES, systemPriorityClasses } from './http/priority-admission.ts';
import { resourceKey } from './command.ts';
import { kindByResource } from '../api/kinds/index.ts';
import { EventPublisher } from './publisher.ts';
import { SecretSealer } from './encryption.ts';
import { Registry } from './registry.ts';
import { ObjectStore } from './store.ts';
import { Auth, parseAuthorizationMode, parseBoolFlag } from './auth/auth.ts';
import { AggregationController, reconcileBootstrapPolicy } from './auth/bootstrap.ts';
import { loadTokenFile } from './auth/token-file.ts';
import { DEFAULT_POLICY, loadAuditPolicy } from './audit/policy.ts';
import { RefusedAudit } from './audit/refused.ts';
import { DEFAULT_FLOW_CONTROL } from './http/flow-control.ts';
import { ServiceAccountTokens } from './auth/service-account-token.ts';
import { ResourceMetricsApi } from './resource-metrics/api.ts';
import { ResourceMetricsCache } from './resource-metrics/cache.ts';
import { ResourceMetricsSubscriber } from './resource-metrics/subscriber.ts';
import { parseDuration } from '../api/units.ts';
import { DEFAULT_SERVICE_RANGES, parseServiceRanges } from './service-allocation.ts';

const SYSTEM_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
const IDENTITY_PREFIX = 'flotilla-apiserver-';
const API_ANNOTATION = 'flotilla.dev/api-url';
const PEER_ANNOTATION = 'flotilla.dev/peer';

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...RAFT_MEMBER_OPTIONS,
      api: { type: 'string' },
      'watch-history-events': { type: 'string' },
      'watch-history-seconds': { type: 'string' },
      'watch-history-bytes': { type: 'string' },
      'gc-heap-growth-percent': { type: 'string', default: '100' },
      'request-timeout': { type: 'string' },
      'header-timeout': { type: 'string', default: '30s' },
      'request-read-timeout': { type: 'string', default: '60s' },
      nats: { type: 'string' },
      'unsafe-stale-reads': { type: 'boolean', default: false },
      'events-max-age': { type: 'string', default: '168h' },
      'events-max-bytes': { type: 'string', default: String(8 * 1024 ** 3) },
      'events-duplicate-window': { type: 'string', default: '10m' },
      'default-not-ready-toleration-seconds': { type: 'string', default: '300' },
      'default-unreachable-toleration-seconds': { type: 'string', default: '300' },
      // How long a pod's or node's last usage report is served by metrics.k8s.io.
      'metrics-retention': { type: 'string', default: '2m' },
      // Where Service cluster IPs and node ports come from (loopback, so the node agents can bind them).
      'service-cluster-ip-range': { type: 'string', default: DEFAULT_SERVICE_RANGES.clusterIPRange },
      'service-node-port-range': { type: 'string', default: DEFAULT_SERVICE_RANGES.nodePortRange },
      // Kubernetes' EncryptionConfiguration: the keys Secrets are sealed with at rest (encryption.ts).
      'encryption-provider-config': { type: 'string' },
      // Authentication and authorization (apiserver/auth): AlwaysAllow keeps every caller all-powerful until TLS arrives.
      'authorization-mode': { type: 'string', default: 'AlwaysAllow' },
      'token-auth-file': { type: 'string' },
      'anonymous-auth': { type: 'string', default: 'true' },
      // Kubernetes' audit policy file: the level of the records of refused requests (apiserver/audit).
      'audit-policy-file': { type: 'string' },
      // Request limits (apiserver/http/flow-control.ts), kube-apiserver's defaults; 0 = no limit.
      'max-requests-inflight': { type: 'string', default: String(DEFAULT_FLOW_CONTROL.maxReadOnly) },
      'max-mutating-requests-inflight': { type: 'string', default: String(DEFAULT_FLOW_CONTROL.maxMutating) },
      'list-rate-limit-qps': { type: 'string', default: String(DEFAULT_FLOW_CONTROL.listQps) },
      'list-rate-limit-burst': { type: 'string', default: String(DEFAULT_FLOW_CONTROL.listBurst) },
      'list-rate-limit-min-objects': { type: 'string', default: String(DEFAULT_FLOW_CONTROL.listMinObjects) },
      'max-header-bytes': { type: 'string', default: '16Ki' },
      // ServiceAccount tokens (auth/service-account-token.ts): every server of a cluster shares the signing key.
      'service-account-signing-key-file': { type: 'string' },
      'service-account-key-file': { type: 'string', multiple: true },
      'service-account-issuer': { type: 'string', multiple: true },
      'api-audiences': { type: 'string' },
      // HTTPS (plain HTTP without them) and x509 client-certificate authentication, as kube-apiserver's flags.
      'tls-cert-file': { type: 'string' },
      'tls-private-key-file': { type: 'string' },
      'client-ca-file': { type: 'string' },
      // The identity presented to node agents for pods/log, exec, attach, portforward (kube-apiserver's names).
      'kubelet-client-certificate': { type: 'string' },
      'kubelet-client-key': { type: 'string' },
      'kubelet-certificate-authority': { type: 'string' },
    },
    strict: true,
  });
  if (!values.id || !values.peers || !values.api || !values.data) {
    throw new Error('usage: flotilla server --id ID --peers ID=HOST:PORT,... --api HOST:PORT --data DIR [--join]');
  }
  const serviceRanges = { clusterIPRange: values['service-cluster-ip-range']!, nodePortRange: values['service-node-port-range']! };
  parseServiceRanges(serviceRanges); // a clear error now rather than refused Service writes later
  // A malformed key file stops the server here, before it joins the cluster or stores anything.
  const sealer = values['encryption-provider-config'] ? SecretSealer.fromFile(values['encryption-provider-config']) : new SecretSealer();
  const authOptions = {
    mode: parseAuthorizationMode(values['authorization-mode']!),
    tokens: values['token-auth-file'] ? loadTokenFile(values['token-auth-file']) : new Map(),
    anonymous: parseBoolFlag(values['anonymous-auth']!, '--anonymous-auth'),
  };
  const flowControl = {
    maxReadOnly: wholeNumber(values['max-requests-inflight']!, '--max-requests-inflight'),
    maxMutating: wholeNumber(values['max-mutating-requests-inflight']!, '--max-mutating-requests-inflight'),
    listQps: positiveNumber(values['list-rate-limit-qps']!, '--list-rate-limit-qps'),
    listBurst: wholeNumber(values['list-rate-limit-burst']!, '--list-rate-limit-burst'),
    listMinObjects: wholeNumber(values['list-rate-limit-min-objects']!, '--list-rate-limit-min-objects'),
  };
  const maxHeaderBytes = parseBytes(values['max-header-bytes']!, '--max-header-bytes');
  // A bad policy file stops the server here with the problem named.
  if (values['audit-policy-file'] && !values.nats) throw new Error('--audit-policy-file needs --nats: refused requests are recorded on the AUDIT stream');
  const auditPolicy = values['audit-policy-file'] ? loadAuditPolicy(values['audit-policy-file']) : DEFAULT_POLICY;
  const serviceAccountTokens = ServiceAccountTokens.fromFiles({
    signingKeyFile: values['service-account-signing-key-file'],
    keyFiles: values['service-account-key-file'],
    issuers: values['service-account-issuer'],
    audiences: values['api-audiences']?.split(',').map((a) => a.trim()).filter(Boolean),
  });
  const tls = loadTls(values['tls-cert-file'], values['tls-private-key-file'], values['client-ca-file']);
  const agentTls = loadAgentClientTls(values['kubelet-client-certificate'], values['kubelet-client-key'], values['kubelet-certificate-authority']);
  // --peer-cert-file, --peer-key-file, --peer-trusted-ca-file (RAFT_MEMBER_OPTIONS): mutual TLS between Raft members.
  const peerTls = loadPeerTls(values);
  const log = pino({ name: 'flotilla-server', base: { server: values.id } });
  limitHeapGrowth(Number(values['gc-heap-growth-percent']));
  const peers = parsePeers(values.peers);
  if (!peers.has(values.id)) throw new Error(`--peers must include this member (${values.id})`);
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

  // The watch history is bounded by bytes (default 64 MiB), and capped by
  // event count and age: a watch or paged list from before it gets 410.
  const store = new ObjectStore({
    maxBytes: values['watch-history-bytes'] ? parseBytes(values['watch-history-bytes'], '--watch-history-bytes') : undefined,
    maxEvents: num(values['watch-history-events']),
    maxAgeMs: values['watch-history-seconds'] ? Number(values['watch-history-seconds']) * 1000 : undefined,
  });
  // Membership changes need this token (or another member's): see apiserver/http/members.ts.
  const adminToken = ensureAdminToken(values.data);
  const directory = new MemberDirectory(store);
  const node = await RaftNode.start({
    id: values.id,
    peers,
    dataDir: values.data,
    stateMachine: directory,
    logger: log,
    join: values.join,
    clusterToken: values['cluster-token'],
    tickMs: num(values['tick-ms']),
    electionTick: num(values['election-ticks']),
    // Snapshots are taken by bytes of log (32 MiB, or the last snapshot's size
    // if larger: that bounds the log kept in memory, however large the
    // objects) or by count, whichever comes first. By count only, every 10,000
    // entries as before, a large store was re-serialized every few seconds
    // under load, each time allocating several copies of its whole state.
    snapshotEntries: num(values['snapshot-entries']) ?? 100_000,
    snapshotBytes: values['snapshot-bytes'] ? parseBytes(values['snapshot-bytes'], '--snapshot-bytes') : undefined,
    tls: peerTls,
  });
  const registry = new Registry(node, store, unsafeFlag(values['unsafe-stale-reads']!, 'stale-reads', log));
  registry.serviceRanges = serviceRanges;
  registry.sealer = sealer;
  if (!serviceAccountTokens.canSign) log.warn('no --service-account-signing-key-file: TokenRequest (kubectl create token, pod tokens) is not served');
  log.info({ encryptionProviderConfig: values['encryption-provider-config'] ?? null, writeKey: sealer.writeKey }, 'Secrets are written sealed under %s', sealer.writeKey);
  const metrics = new client.Registry();
  client.collectDefaultMetrics({ register: metrics });
  registerRaftMetrics(metrics, node);
  new client.Gauge({
    name: 'flotilla_store_rejected_entries', help: 'Committed entries the object store could not apply (no-ops on every member)',
    registers: [metrics], collect() { this.set(store.rejectedEntries); },
  });
  store.on('rejected', ({ index, reason }: { index: number; reason: string }) =>
    log.warn({ index, reason }, 'object store: committed entry %d not applied (a no-op on every member)', index));
  const publisher = values.nats
    ? new EventPublisher(node, store, {
      servers: values.nats.split(',').map((u) => u.trim()).filter(Boolean),
      maxAgeMs: parseDuration(values['events-max-age']!, '--events-max-age'),
      maxBytes: Number(values['events-max-bytes']),
      duplicateWindowMs: parseDuration(values['events-duplicate-window']!, '--events-duplicate-window'),
    }, log.child({ component: 'publisher' }), metrics)
    : undefined;
  const metricsCache = new ResourceMetricsCache(parseDuration(values['metrics-retention']!, '--metrics-retention'));
  const metricsSubscriber = values.nats
    ? new ResourceMetricsSubscriber(values.nats.split(',').map((u) => u.trim()).filter(Boolean), metricsCache, log.child({ component: 'resource-metrics' }), metrics)
    : undefined;
  const refusedAudit = values.nats
    ? new RefusedAudit({
      servers: values.nats.split(',').map((u) => u.trim()).filter(Boolean), serverId: values.id, policy: auditPolicy,
      maxAgeMs: parseDuration(values['events-max-age']!, '--events-max-age'),
    }, log.child({ component: 'audit' }), metrics)
    : undefined;
  const [host, port] = splitHostPort(values.api);
  const apiUrl = `${tls ? 'https' : 'http'}://${values.api}`;

  // API addresses of the current Raft members, from the replicated directory
  // that only servers write (never from objects clients can edit).
  const memberApis = () => {
    const m = new Map<string, string>();
    for (const { id } of node.status().members) {
      const r = directory.get(id);
      if (r) m.set(id, r.api);
    }
    m.set(values.id!, apiUrl);
    return m;
  };
  const memberRecords = () => {
    const ids = new Set(node.status().members.map((x) => x.id));
    return directory.all().filter((r) => ids.has(r.id));
  };
  announceMember(node, directory, { id: values.id, api: apiUrl, tokenHash: hashToken(adminToken) }, log);

  const http = new ApiHttpServer({
    node, registry, logger: log, metrics, apiUrl, memberApis,
    refusedAudit, flowControl, maxHeaderBytes,
    auth: new Auth({
      ...authOptions,
      serviceAccounts: {
        tokens: serviceAccountTokens,
        // A ServiceAccount or pod missing here may only not be applied here yet: then ask the cluster.
        lookup: async (res, ns, name) => store.get(res, ns, name) ?? (await registry.sync({ kind: 'linearizable' }, 5000), store.get(res, ns, name)),
        refused: (reason) => log.info({ reason }, 'a ServiceAccount token was refused'),
      },
    }, store),
    tls,
    agentDialer: agentDialer(agentTls),
    admin: { token: adminToken, members: memberRecords },
    headersTimeoutMs: parseDuration(values['header-timeout']!, '--header-timeout'),
    requestReadTimeoutMs: parseDuration(values['request-read-timeout']!, '--request-read-timeout'),
    events: publisher ? () => publisher.status() : undefined,
    defaultTolerationSeconds: {
      notReadySeconds: parseTolerationSeconds(values['default-not-ready-toleration-seconds']!, '--default-not-ready-toleration-seconds'),
      unreachableSeconds: parseTolerationSeconds(values['default-unreachable-toleration-seconds']!, '--default-unreachable-toleration-seconds'),
    },
    resourceMetrics: metricsSubscriber ? new ResourceMetricsApi(metricsCache, store) : undefined,
    defaultTimeoutMs: num(values['request-timeout']),
    addMember: async (id, peer) => {
      // A new member first follows as a learner; it becomes a voter once it has caught up.
      await node.addMember(id, peer, { learner: true });
      const deadline = Date.now() + 60_000;
      for (;;) {
        const pr = node.status().progress?.[id];
        if (pr && pr.match >= node.status().commit - 10) break;
        if (Date.now() > deadline) throw new Error(`member ${id} did not catch up within 60 s; it stays a learner`);
        await new Promise((r) => setTimeout(r, 100));
      }
      await node.promoteMember(id);
    },
    removeMember: (id) => node.removeMember(id),
  });
  metricsSubscriber?.start();
  await http.listen(host, port);
  log.info({ api: apiUrl, peer: peers.get(values.id), data: values.data }, 'flotilla server started');

  const system = { user: 'system:apiserver', verb: 'system' as const, timeoutMs: 5000 };
  // The default RBAC policy and ClusterRole aggregation exist only where RBAC decides.
  const aggregation = authOptions.mode.split(',').includes('RBAC') ? new AggregationController(registry, log, system, () => node.role === Role.Leader) : undefined;
  node.on('role', ({ role }: { role: Role }) => {
    if (role === Role.Leader) {
      void ensureNamespaces(registry, log, system);
      void ensurePriorityClasses(registry, log, system);
      if (aggregation) void retrying('reconcile the default RBAC policy', log, () => reconcileBootstrapPolicy(registry, system)).then(() => aggregation.schedule());
    }
  });
  void publishIdentity(registry, values.id, apiUrl, peers.get(values.id)!, log, system);

  node.on('fatal', () => process.exit(1));
  node.on('removed', () => log.warn('this server was removed from the cluster; it keeps serving reads until stopped'));
  const shutdown = async () => {
    await http.close().catch(() => {});
    await publisher?.stop();
    await refusedAudit?.stop();
    await metricsSubscriber?.stop();
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

async function retrying(what: string, log: pino.Logger, fn: () => Promise<void>): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await fn();
      return;
    } catch (e) {
      if (e instanceof ApiError && e.reason === 'AlreadyExists') return;
      if (attempt % 20 === 19) log.warn({ err: (e as Error).message }, `still trying: ${what}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** The leader makes sure the namespaces every cluster has exist. */
async function ensureNamespaces(registry: Registry, log: pino.Logger, ctx: Parameters<Registry['create']>[3]): Promise<void> {
  const kind = kindByResource('', 'v1', 'namespaces')!;
  for (const name of SYSTEM_NAMESPACES) {
    await retrying(`create namespace ${name}`, log, async () => {
      if (registry.store.get('/namespaces', '', name)) return;
      const obj = { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name } }, spec: {}, status: { phase: 'Active' } };
      kind.default(obj);
      namespacePrepareForCreate(obj);
      await registry.create(kind, '', obj, ctx);
    });
  }
}

/** The leader makes sure the system PriorityClasses exist (Kubernetes' scheduling bootstrap). */
async function ensurePriorityClasses(registry: Registry, log: pino.Logger, ctx: Parameters<Registry['create']>[3]): Promise<void> {
  for (const obj of systemPriorityClasses()) {
    const name = obj.metadata!.name!;
    await retrying(`create PriorityClass ${name}`, log, async () => {
      if (registry.store.get(resourceKey(PRIORITY_CLASSES.group, PRIORITY_CLASSES.plural), '', name)) return;
      PRIORITY_CLASSES.default(obj);
      await registry.create(PRIORITY_CLASSES, '', obj, ctx);
    });
  }
}

/**
 * Each server records its API address in a Lease (like Kubernetes' apiserver
 * identity leases) for people and tools to see. Informational only: clients can
 * edit Leases, so no server routes by them (see the member directory).
 */
async function publishIdentity(registry: Registry, id: string, apiUrl: string, peer: string, log: pino.Logger, ctx: Parameters<Registry['create']>[3]): Promise<void> {
  const kind = kindByResource('coordination.k8s.io', 'v1', 'leases')!;
  const name = `${IDENTITY_PREFIX}${id}`;
  const annotations = { [API_ANNOTATION]: apiUrl, [PEER_ANNOTATION]: peer };
  await retrying('publish this server\'s API address', log, async () => {
    if (!registry.node.leader) throw new Error('no leader yet');
    if (!registry.store.get('/namespaces', '', 'kube-system')) throw new Error('kube-system does not exist yet');
    const cur = registry.store.get('coordination.k8s.io/leases', 'kube-system', name);
    if (cur) {
      const o = JSON.parse(cur.json) as { metadata: { annotations?: Record<string, string> } };
      if (o.metadata.annotations?.[API_ANNOTATION] === apiUrl && o.metadata.annotations?.[PEER_ANNOTATION] === peer) return;
      await registry.update(kind, 'kube-system', name, (obj) => {
        obj.metadata = { ...obj.metadata, annotations: { ...(obj.metadata?.annotations ?? {}), ...annotations } };
        return obj;
      }, ctx);
      return;
    }
    const obj = {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: { name, namespace: 'kube-system', labels: { 'apiserver.kubernetes.io/identity': 'flotilla' }, annotations },
      spec: { holderIdentity: id },
    };
    await registry.create(kind, 'kube-system', obj, ctx);
  });
}

/**
 * Puts this server's record (API address, admin token hash) in the member
 * directory through Raft, and again whenever it is missing or out of date
 * (a member that joins gets a leader later; an old snapshot may lack it).
 */
function announceMember(node: RaftNode, directory: MemberDirectory, rec: { id: string; api: string; tokenHash: string }, log: pino.Logger): void {
  let busy = false;
  let failures = 0;
  const timer = setInterval(() => {
    const cur = directory.get(rec.id);
    if (busy || !node.leader || (cur && cur.api === rec.api && cur.tokenHash === rec.tokenHash)) return;
    if (!node.status().members.some((m) => m.id === rec.id)) return;
    busy = true;
    node.propose(MemberDirectory.entry(rec), 5000).then(
      () => log.info({ api: rec.api }, 'announced this server\'s API address to the cluster'),
      (e: Error) => {
        if (++failures % 20 === 0) log.warn({ err: e.message }, 'still trying to announce this server\'s API address');
      },
    ).finally(() => (busy = false));
  }, 250);
  timer.unref();
  node.on('removed', () => clearInterval(timer));
}

/**
 * After each full garbage collection V8 lets the heap grow to up to about
 * four times what survived before collecting again: under a steady stream of
 * writes (each parses and re-serializes its object) that is hundreds of MB of
 * garbage per server. Growing by a fixed, smaller factor costs CPU in more
 * frequent collections and keeps RSS nearer the live data. The default, 100
 * (twice the live heap), is a compromise measured in bench/RESULTS.md: 30
 * saves more memory but cost up to half the update throughput on a loaded
 * 2-core machine; 0 leaves V8's own heuristic.
 */
function limitHeapGrowth(percent: number): void {
  if (!Number.isInteger(percent) || percent < 0) throw new Error('--gc-heap-growth-percent: expected a whole number >= 0');
  if (percent > 0) v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
}

/**
 * Debug flags that break safety on purpose (for the chaos suite's own test)
 * are refused unless FLOTILLA_UNSAFE names them: nobody turns one on by accident.
 */
function unsafeFlag(on: boolean, name: string, log: pino.Logger): boolean {
  if (!on) return false;
  const allowed = (process.env.FLOTILLA_UNSAFE ?? '').split(',').map((s) => s.trim());
  if (!allowed.includes(name)) {
    throw new Error(`--unsafe-${name} breaks linearizability and is for testing the chaos checker only; set FLOTILLA_UNSAFE=${name} to allow it`);
  }
  log.warn(`UNSAFE: --unsafe-${name} is on: this server gives wrong answers on purpose`);
  return true;
}

function wholeNumber(v: string, flag: string): number {
  if (!/^\d+$/.test(v.trim())) throw new Error(`${flag}: "${v}" is not a whole number >= 0`);
  return Number(v);
}

function positiveNumber(v: string, flag: string): number {
  const n = Number(v);
  if (!v.trim() || !Number.isFinite(n) || n < 0) throw new Error(`${flag}: "${v}" is not a number >= 0`);
  return n;
}
