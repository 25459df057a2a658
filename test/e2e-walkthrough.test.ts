// The README walkthrough with the real processes: 3 servers, NATS, the
// controller manager, the scheduler, two process node agents (with their
// service proxies) and the ingress proxy; the real kubectl through one
// stable API address (the balancer `flotilla up` runs). Steps:
// - the web Deployment, Service and Ingress from examples/walkthrough answer
//   through the Ingress;
// - a rolling update (`kubectl set env`) under continuous traffic through
//   the Ingress: zero failed requests (the client never retries);
// - the HPA (examples/walkthrough/hpa.yaml) scales web up under load and,
//   after its 30 s window, back down; metrics come from the agents;
// - the Raft leader is killed while writes go on: every acknowledged write
//   is there after;
// - a node agent is killed: after the (shortened) eviction timeout its pods
//   are replaced on the other node;
// - the audit stream (JetStream) holds every write of the run exactly once,
//   in index order.
import { join } from 'node:path';
import t from 'tap';
import { Agent, request } from 'undici';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { ApiBalancer } from '../bin/api-balancer.ts';
import { checkStreamAgainstLog, committedIndexes, everyResourcePath } from '../chaos/audit.ts';
import { readStream } from '../chaos/checks.ts';
import { AgentProcess } from '../harness/agent.ts';
import { ControllerManager } from '../harness/controllers.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { startIngress } from '../harness/ingress.ts';
import { kubectlMissing, runKubectl } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { ROOT, freePort, hasExited, sleep, tempDir, waitFor } from '../harness/procs.ts';
import { SchedulerProcess } from '../harness/scheduler.ts';
import { writeFileSync } from 'node:fs';

const PODS = resolveKind('pods')!;
const DEPLOYMENTS = resolveKind('deployments')!;
const CONFIGMAPS = resolveKind('configmaps')!;
const NODES = resolveKind('nodes')!;
const HOST = 'web.flotilla.local';
const missing = kubectlMissing(t);

type Deployment = KubeObject & { spec: { replicas: number }; status?: { availableReplicas?: number; updatedReplicas?: number; replicas?: number } };

const ready = (p: Pod) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;

t.test('the walkthrough on the real processes', { skip: missing ?? false }, async (t) => {
  const dir = tempDir('e2e');
  // Addresses of this run only (other clusters may share the machine's loopback).
  const octet = 20 + Math.floor(Math.random() * 200);
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(3, {
    dir,
    args: ['--nats', nats.url,
      // Pods tolerate an unreachable node for 3 s (the walkthrough's shortened eviction timeout).
      '--default-unreachable-toleration-seconds', '3', '--default-not-ready-toleration-seconds', '3',
      // The audit check compares the stream with the servers' whole history.
      '--watch-history-events', '2000000', '--watch-history-bytes', '4Gi', '--watch-history-seconds', '86400', '--snapshot-entries', '1000000'],
  });
  t.teardown(() => cluster.stop());
  const api = new ApiClient(cluster.urls);
  t.teardown(() => api.close());

  // kubectl goes through one stable address, as with `flotilla up`, so it survives the leader kill.
  const balancer = new ApiBalancer({ backends: cluster.members.map((m) => m.api) });
  const apiPort = await freePort();
  await balancer.listen('127.0.0.1', apiPort);
  t.teardown(() => balancer.close());
  const kubeconfig = join(dir, 'kubeconfig-balanced');
  writeFileSync(kubeconfig, [
    'apiVersion: v1', 'kind: Config', 'current-context: flotilla',
    'clusters:', '- name: flotilla', '  cluster:', `    server: http://127.0.0.1:${apiPort}`,
    'contexts:', '- name: flotilla', '  context:', '    cluster: flotilla', '    user: anonymous', '    namespace: default',
    'users:', '- name: anonymous', '  user: {}', ''].join('\n'));
  const cache = tempDir('kubectl-cache');
  const kubectl = async (...args: string[]) => {
    const r = await runKubectl(kubeconfig, cache, args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}: ${r.err}`);
    return r.out;
  };

  const controllers = await ControllerManager.start({
    servers: cluster.urls, nats: nats.url, id: 'cm-1', dir,
    args: ['--node-monitor-period', '1s', '--node-monitor-grace-period', '10s',
      // Pod IPs of this run only.
      '--cluster-cidr', `127.${150 + (octet % 50)}.0.0/16`,
      '--horizontal-pod-autoscaler-sync-period', '2s', '--horizontal-pod-autoscaler-cpu-initialization-period', '5s',
      '--horizontal-pod-autoscaler-initial-readiness-delay', '1s'],
  });
  t.teardown(() => controllers.stop('SIGKILL'));
  const scheduler = await SchedulerProcess.start({ servers: cluster.urls, nats: nats.url, id: 'sched-1', dir });
  t.teardown(() => scheduler.replica.stop('SIGKILL'));
  // A replica whose Lease renewal failed during the leader kill exits on purpose; `flotilla up` restarts it, so does this.
  t.teardown(scheduler.supervise());
  const cmWatch = setInterval(() => { if (hasExited(controllers.proc)) void controllers.restart().catch(() => {}); }, 500);
  t.teardown(() => clearInterval(cmWatch));

  const agentArgs = ['--lease-renew-interval', '1s', '--node-status-update-frequency', '2s', '--metrics-interval', '1s', '--sync-frequency', '5s'];
  const agents = await Promise.all([1, 2].map((i) => AgentProcess.start({
    servers: cluster.urls, nats: nats.url, name: `node-${i}`, address: `127.77.${octet}.${10 + i}`, dir, args: agentArgs,
  })));
  for (const a of agents) t.teardown(() => a.stop());
  const ingress = await startIngress({ servers: cluster.urls, nats: nats.url, dir });
  t.teardown(() => ingress.stop('SIGKILL'));

  // HTTP through the Ingress: one request, no retry.
  const http = new Agent({ connections: 16 });
  t.teardown(() => http.close());
  const get = async (path = '/'): Promise<{ ok: boolean; text: string }> => {
    try {
      const r = await request(`http://${ingress.http}${path}`, { headers: { host: HOST }, dispatcher: http, headersTimeout: 10_000, bodyTimeout: 10_000 });
      const text = await r.body.text();
      return { ok: r.statusCode === 200, text: r.statusCode === 200 ? text : `${r.statusCode} ${text}` };
    } catch (e) {
      return { ok: false, text: `error ${(e as Error).message}` };
    }
  };
  const webPods = async () => (await api.list<Pod>(resourcePath(PODS, 'default'), { labelSelector: 'app=web' })).items;
  const deployment = () => api.get<Deployment>(resourcePath(DEPLOYMENTS, 'default', 'web'));

  await t.test('web Deployment, Service and Ingress answer through the Ingress', async (t) => {
    t.match(await kubectl('apply', '-f', join(ROOT, 'examples', 'walkthrough', 'web.yaml')), /deployment\.apps\/web created/);
    await waitFor('3 web pods ready', async () => (await webPods()).filter(ready).length === 3, 60_000, 250);
    const first = await waitFor('an answer through the ingress', async () => {
      const r = await get();
      return r.ok ? r.text : undefined;
    }, 20_000, 200);
    t.match(first, /^v1 web-/, `the ingress answers: ${first.trim()}`);
    const nodes = new Set((await webPods()).map((p) => p.spec?.nodeName));
    t.ok(nodes.size === 2, `spread over both nodes: ${[...nodes].join(', ')}`);
  });

  await t.test('rolling update under traffic: zero failed requests', async (t) => {
    const results: { ok: boolean; text: string }[] = [];
    let running = true;
    const loops = Array.from({ length: 4 }, async () => {
      while (running) results.push(await get());
    });
    await sleep(1000);
    await kubectl('set', 'env', 'deployment/web', 'VERSION=v2');
    t.match(await kubectl('rollout', 'status', 'deployment/web', '--timeout=120s'), /successfully rolled out/);
    // Traffic goes on a little after the last old pod is gone.
    await waitFor('only v2 pods left', async () => {
      const pods = await webPods();
      return pods.length === 3 && pods.every((p) => JSON.stringify(p.spec).includes('"value":"v2"'));
    }, 60_000, 250);
    await sleep(1000);
    running = false;
    await Promise.all(loops);
    const failed = results.filter((r) => !r.ok);
    t.ok(results.length > 100, `${results.length} requests during the update`);
    t.same(failed.slice(0, 5), [], `zero failed requests (${failed.length} of ${results.length} failed)`);
    t.ok(results.some((r) => r.text.startsWith('v1')) && results.some((r) => r.text.startsWith('v2')), 'answers from both versions');
    t.match(results[results.length - 1].text, /^v2 /, 'the last answers come from v2');
  });

  let hpaDown: Promise<void> | undefined;
  await t.test('the HPA scales web up under load', async (t) => {
    t.match(await kubectl('apply', '-f', join(ROOT, 'examples', 'walkthrough', 'hpa.yaml')), /horizontalpodautoscaler\.autoscaling\/web created/);
    let loading = true;
    const load = Array.from({ length: 4 }, async () => {
      while (loading) await get('/burn?ms=200');
    });
    try {
      const up = await waitFor('scaled above 3', async () => {
        const d = await deployment();
        return d.spec.replicas > 3 ? d.spec.replicas : undefined;
      }, 90_000, 500);
      t.ok(up > 3, `scaled up to ${up} replicas`);
    } finally {
      loading = false;
      await Promise.all(load);
    }
    // Back down after the 30 s stabilization window: checked after the leader kill, which runs meanwhile.
    hpaDown = waitFor('scaled back to 3', async () => (await deployment()).spec.replicas === 3, 120_000, 500).then(() => undefined);
    hpaDown.catch(() => {});
  });

  const acked: { name: string; value: string; rv: number }[] = [];
  await t.test('writes during a Raft leader kill: every acknowledged write is there', async (t) => {
    const leader = await cluster.leader();
    let running = true;
    let attempts = 0;
    const writers = Array.from({ length: 3 }, async (_, w) => {
      for (let i = 0; running; i++) {
        const name = `audit-${w}-${i}`;
        attempts++;
        try {
          const cm = await api.create<KubeObject>(resourcePath(CONFIGMAPS, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { v: String(i) } });
          acked.push({ name, value: String(i), rv: Number(cm.metadata?.resourceVersion) });
        } catch {
          await sleep(100);
        }
      }
    });
    await sleep(1500);
    const before = acked.length;
    await cluster.kill(leader);
    const next = await cluster.leader([leader]);
    await waitFor('writes acknowledged after the failover', () => acked.length > before + 20, 30_000, 100);
    running = false;
    await Promise.all(writers);
    cluster.startMember(leader);
    await cluster.waitReady(undefined, 60_000);
    t.not(next, leader, `leader ${leader} killed, ${next} took over`);
    t.ok(acked.length > 0, `${acked.length} of ${attempts} writes acknowledged`);
    const lost: string[] = [];
    for (const a of acked) {
      const cm = await api.get<KubeObject & { data?: { v?: string } }>(resourcePath(CONFIGMAPS, 'default', a.name)).catch(() => undefined);
      if (cm?.data?.v !== a.value) lost.push(a.name);
    }
    t.same(lost, [], 'every acknowledged write is present');
    t.match(await kubectl('get', 'configmap', acked[acked.length - 1].name, '-o', 'name'), /configmap\/audit-/, 'kubectl reads through the balancer');
  });

  await t.test('the HPA scales web back down once the load is gone', async (t) => {
    await hpaDown;
    t.equal((await deployment()).spec.replicas, 3, 'back to minReplicas');
    await waitFor('3 web pods ready', async () => (await webPods()).filter(ready).length === 3, 60_000, 250);
  });

  await t.test('a killed node agent: its pods are replaced on the other node', async (t) => {
    // The node running more web pods goes down.
    const live = (await webPods()).filter((p) => !p.metadata.deletionTimestamp);
    const [down, up] = live.filter((p) => p.spec?.nodeName === 'node-2').length >= live.filter((p) => p.spec?.nodeName === 'node-1').length ? ['node-2', 'node-1'] : ['node-1', 'node-2'];
    const victim = agents[down === 'node-1' ? 0 : 1];
    const onVictim = live.filter((p) => p.spec?.nodeName === down).map((p) => p.metadata.name);
    t.ok(onVictim.length > 0, `web pods on ${down}: ${onVictim.join(', ')}`);
    await victim.kill('SIGKILL');
    const node = await waitFor(`${down} unreachable`, async () => {
      const n = await api.get<KubeObject & { spec?: { taints?: { key: string; effect: string }[] } }>(resourcePath(NODES, '', down));
      return n.spec?.taints?.some((x) => x.key === 'node.kubernetes.io/unreachable' && x.effect === 'NoExecute') ? n : undefined;
    }, 30_000, 250);
    t.ok(node, `${down} tainted unreachable:NoExecute`);
    await waitFor(`3 web pods ready on ${up}`, async () => {
      const pods = (await webPods()).filter(ready);
      return pods.length === 3 && pods.every((p) => p.spec?.nodeName === up);
    }, 60_000, 250);
    const after = await webPods();
    t.ok(onVictim.every((n) => after.find((p) => p.metadata.name === n)?.metadata.deletionTimestamp || !after.some((p) => p.metadata.name === n)), `the pods on ${down} were evicted`);
    const r = await get();
    t.ok(r.ok, `the ingress still answers: ${r.text.trim()}`);
  });

  await t.test('the audit stream holds every write once, in order', async (t) => {
    // Every server has published everything it committed.
    await waitFor('the stream caught up', async () => {
      const st = await Promise.all(cluster.members.map((m) => cluster.status(m.id)));
      const leader = st.find((s) => s?.role === 'leader');
      return leader && (leader as { events?: { lagEvents?: number } }).events?.lagEvents === 0;
    }, 30_000, 200);
    // Stop the writers of the cluster (agents' leases, controllers, scheduler) so the stream and the log are read at one point.
    await Promise.all([controllers.stop('SIGKILL'), scheduler.replica.stop('SIGKILL'), ingress.stop('SIGKILL'), ...agents.map((a) => a.kill('SIGKILL'))]);
    clearInterval(cmWatch);
    await sleep(500);
    await waitFor('the stream caught up', async () => {
      const st = await cluster.status(await cluster.leader());
      return (st as { events?: { lagEvents?: number } } | undefined)?.events?.lagEvents === 0;
    }, 30_000, 200);
    const stream = await readStream(nats.urls);
    const committed = await committedIndexes(cluster.urls, everyResourcePath());
    const outcome = checkStreamAgainstLog(stream, committed);
    t.equal(outcome.anomalies, 0, `stream of ${stream.length} messages against ${committed?.indexes.length} committed writes: ${outcome.details.join('; ')}`);
    const byIndex = new Map(stream.map((e) => [e.index, e]));
    const wrong = acked.filter((a) => byIndex.get(a.rv)?.name !== a.name || byIndex.get(a.rv)?.value !== a.value);
    t.same(wrong.slice(0, 5), [], `every acknowledged write of the leader kill is on the stream at its index (${acked.length})`);
    const kinds = new Set(stream.map((e) => e.resource));
    for (const k of ['deployments', 'replicasets', 'pods', 'endpointslices', 'horizontalpodautoscalers', 'ingresses', 'leases', 'nodes']) t.ok(kinds.has(k), `the stream holds ${k} writes`);
  });
});
