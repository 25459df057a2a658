// The eviction subresource honours PodDisruptionBudgets (429 with
// Kubernetes' message when the budget allows none, one disruption taken per
// eviction), and cordon, uncordon and drain work through the real kubectl
// and flotilla's CLI (pods held by a budget are evicted one at a time).
import { spawn } from 'node:child_process';
import t from 'tap';
import { request } from 'undici';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { DisruptionController } from '../agents/controllers/disruption/controller.ts';
import { ReplicaSetController } from '../agents/controllers/replicaset/controller.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { SchedulerProcess } from '../harness/scheduler.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { FLOTILLA_BIN, tempDir, waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const PODS = resolveKind('pods')!;
const RS = resolveKind('replicasets')!;
const PDBS = resolveKind('poddisruptionbudgets')!;
const NODES = resolveKind('nodes')!;
type Obj = Record<string, any>;

function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => c.kill('SIGKILL'), 150_000);
    c.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

t.test('eviction and drain', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const api = new ApiClient(cluster.urls);
  t.teardown(() => api.close());
  // The real scheduler places pods (it honours cordons); FakeNodes runs them.
  const nodes = new FakeNodes({ client: api, nats: nats.url, count: 2, bind: false });
  await nodes.start();
  t.teardown(() => nodes.stop());
  const scheduler = await SchedulerProcess.start({ servers: cluster.urls, nats: nats.url, id: 'sched' });
  t.teardown(() => scheduler.stop());
  const ctl = await runControllers(api, nats.url, [(ctx) => new ReplicaSetController(ctx), (ctx) => new DisruptionController(ctx)]);
  t.teardown(() => ctl.stop());

  await api.create(resourcePath(RS, 'default'), {
    apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web' },
    spec: { replicas: 4, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'web', image: 'busybox' }] } } },
  });
  await api.create(resourcePath(PDBS, 'default'), { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata: { name: 'web' }, spec: { minAvailable: 3, selector: { matchLabels: { app: 'web' } } } });
  const ready = async () => (await api.list<Obj>(resourcePath(PODS, 'default'), { labelSelector: 'app=web' })).items
    .filter((p) => !p.metadata.deletionTimestamp && (p.status?.conditions ?? []).some((c: Obj) => c.type === 'Ready' && c.status === 'True'));
  await waitFor('4 ready pods', async () => (await ready()).length === 4, 20_000, 100);
  await waitFor('the budget to allow 1', async () => (await api.get<Obj>(resourcePath(PDBS, 'default', 'web'))).status?.disruptionsAllowed === 1, 20_000, 100);

  // ---- the subresource
  const [a, b] = await ready();
  // Sent raw: a client that honours Retry-After (ours, client-go) would wait and try again.
  const evict = async (p: Obj) => {
    const r = await request(`${cluster.urls[0]}${resourcePath(PODS, 'default', p.metadata.name, 'eviction')}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: p.metadata.name } }),
    });
    return { code: r.statusCode, retryAfter: r.headers['retry-after'], body: (await r.body.json()) as Obj };
  };
  // Two evictions at once against a budget that allows one: exactly one gets it (the budget is taken with a precondition).
  const outcomes = await Promise.all([a, b].map(evict));
  t.same(outcomes.map((o) => o.code).sort(), [201, 429], 'one of two concurrent evictions is allowed, the other refused with 429');
  const refused = outcomes.find((o) => o.code === 429);
  t.equal(refused?.body.message, 'Cannot evict pod as it would violate the pod\'s disruption budget.');
  t.equal(refused?.body.reason, 'TooManyRequests');
  t.match(JSON.stringify(refused?.body.details), /The disruption budget web needs 3 healthy pods and has \d+ currently/, 'the cause names the budget');
  const winner = outcomes[0]!.code === 201 ? a : b;
  const pdb = await api.get<Obj>(resourcePath(PDBS, 'default', 'web'));
  t.ok(pdb.status.disruptedPods?.[winner.metadata.name] || pdb.status.disruptionsAllowed !== undefined, 'the budget recorded the disruption');
  const gone = await api.create(resourcePath(PODS, 'default', 'nope', 'eviction'), { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'nope' } }).then(() => 0, (e: ApiClientError) => e.code);
  t.equal(gone, 404, 'evicting a pod that does not exist: 404');
  await waitFor('the evicted pod to be replaced and the budget to recover', async () => (await ready()).length === 4
    && (await api.get<Obj>(resourcePath(PDBS, 'default', 'web'))).status?.disruptionsAllowed === 1, 30_000, 100);

  // ---- flotilla cordon / uncordon / drain
  // Asynchronous: the fake nodes in this process must keep running the pods while a drain waits for them.
  const flotilla = (...args: string[]) => run(process.execPath, [FLOTILLA_BIN, ...args, '--server', cluster.urls.join(',')]);
  const unschedulable = async (n: string) => (await api.get<Obj>(resourcePath(NODES, '', n))).spec?.unschedulable === true;
  t.match((await flotilla('cordon', 'node-2')).stdout, /node\/node-2 cordoned/);
  t.ok(await unschedulable('node-2'), 'cordon sets spec.unschedulable');
  t.match((await flotilla('uncordon', 'node-2')).stdout, /node\/node-2 uncordoned/);
  t.notOk(await unschedulable('node-2'), 'uncordon clears it');
  await api.create(resourcePath(PODS, 'default'), { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'lonely' }, spec: { nodeName: 'node-2', containers: [{ name: 'c', image: 'busybox' }] } });
  const blocked = await flotilla('drain', 'node-2');
  t.not(blocked.status, 0, 'drain stops at a pod no controller manages');
  t.match(blocked.stderr, /cannot delete Pods that declare no controller \(use --force to override\): default\/lonely/);
  const onNode2 = async () => (await api.list<Obj>(resourcePath(PODS, ''), { fieldSelector: 'spec.nodeName=node-2' })).items.filter((p) => !p.metadata.deletionTimestamp);
  const drained = await flotilla('drain', 'node-2', '--force', '--timeout', '90s');
  t.equal(drained.status, 0, `flotilla drain --force: ${drained.stderr.slice(0, 3000)} ${drained.stdout}`);
  t.match(drained.stdout, /node\/node-2 drained/);
  t.same((await onNode2()).filter((p) => p.metadata.creationTimestamp && p.metadata.name === 'lonely'), [], 'the unmanaged pod is gone');
  t.ok(await unschedulable('node-2'), 'a drained node stays cordoned');
  t.match((await flotilla('uncordon', 'node-2')).stdout, /uncordoned/);

  // ---- the real kubectl: drain honours the budget through the eviction subresource it finds in discovery
  const missing = kubectlMissing(t);
  if (missing) return;
  await waitFor('4 ready pods again', async () => (await ready()).length === 4, 30_000, 100);
  // A budget that allows 2 of the 4 pods (all on node-1 now) at a time: kubectl's drain still meets a
  // refusal (429, Retry-After 10 s) for the other two and evicts them once the first two are replaced,
  // in one 10-second wait instead of three (one pod at a time).
  const webOn = async (n: string) => (await api.list<Obj>(resourcePath(PODS, ''), { fieldSelector: `spec.nodeName=${n}` })).items.filter((p) => !p.metadata.deletionTimestamp && p.metadata.labels?.app === 'web').length;
  t.equal(await webOn('node-1'), 4, 'every web pod is on node-1: the budget cannot let them all go at once');
  await api.patch(resourcePath(PDBS, 'default', 'web'), { spec: { minAvailable: 2 } }, 'application/merge-patch+json');
  await waitFor('the budget to allow 2', async () => (await api.get<Obj>(resourcePath(PDBS, 'default', 'web'))).status?.disruptionsAllowed === 2, 20_000, 100);
  const cache = tempDir('kubectl-cache');
  const kubectl = (...args: string[]) => run('kubectl', ['--kubeconfig', cluster.kubeconfig, '--cache-dir', cache, ...args]);
  t.equal((await kubectl('cordon', 'node-1')).status, 0, 'kubectl cordon');
  t.ok(await unschedulable('node-1'));
  // The ready web pods while kubectl drains: never fewer than the budget's 2.
  let fewest = Infinity;
  let draining = true;
  const watching = (async () => {
    while (draining) {
      fewest = Math.min(fewest, (await ready()).length);
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const k = await kubectl('drain', 'node-1', '--ignore-daemonsets', '--timeout=100s');
  draining = false;
  await watching;
  t.equal(k.status, 0, `kubectl drain: ${k.stderr.slice(0, 600)}`);
  t.ok(fewest >= 2, `the budget held during kubectl's drain (fewest ready web pods: ${fewest})`);
  t.match(k.stdout, /node\/node-1 drained/);
  t.equal((await api.list<Obj>(resourcePath(PODS, ''), { fieldSelector: 'spec.nodeName=node-1' })).items.filter((p) => !p.metadata.deletionTimestamp && p.metadata.labels?.app === 'web').length, 0, 'no web pod left on node-1');
  t.equal((await kubectl('uncordon', 'node-1')).status, 0, 'kubectl uncordon');
});
