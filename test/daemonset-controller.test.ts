// DaemonSet: placement as tables (nodeSelector, node affinity, taints and the
// tolerations every daemon pod gets), then against a real server with three
// FakeNodes binding the pinned pods: one pod per eligible node, nodes that
// gain or lose a label or a taint, RollingUpdate with maxUnavailable and with
// maxSurge (the bounds checked on every pod event), OnDelete, status and
// `kubectl rollout status daemonset`.
import t from 'tap';
import { resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { type DaemonSetObj, DaemonSetController } from '../agents/controllers/daemonset/controller.ts';
import { daemonTolerations, pinToNode, placement, targetNode } from '../agents/controllers/daemonset/placement.ts';
import { CONTROLLER_REVISION_HASH } from '../agents/controllers/history/revisions.ts';
import { Informer } from '../agents/informer/informer.ts';
import type { Node, Pod, PodSpec } from '../agents/informer/types.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { waitFor } from '../harness/procs.ts';
import { startWorkloadCluster } from './support/workload-cluster.ts';

const node = (name: string, labels: Record<string, string> = {}, taints: { key: string; value?: string; effect: string }[] = []): Node =>
  ({ metadata: { name, labels: { 'kubernetes.io/hostname': name, ...labels } }, spec: { taints } } as Node);
const spec = (extra: Record<string, unknown> = {}): PodSpec => ({ containers: [{ name: 'c' }], ...extra });

t.test('placement', async (t) => {
  const cases: [string, PodSpec, Node, boolean, boolean][] = [
    ['plain node', spec(), node('a'), true, true],
    ['nodeSelector matches', spec({ nodeSelector: { disk: 'ssd' } }), node('a', { disk: 'ssd' }), true, true],
    ['nodeSelector does not', spec({ nodeSelector: { disk: 'ssd' } }), node('a', { disk: 'hdd' }), false, false],
    ['nodeName elsewhere', spec({ nodeName: 'b' }), node('a'), false, false],
    ['required affinity matches', spec({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['x', 'y'] }] }] } } } }), node('a', { zone: 'y' }), true, true],
    ['required affinity does not', spec({ affinity: { nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'In', values: ['x'] }] }] } } } }), node('a', { zone: 'y' }), false, false],
    ['NoSchedule taint: not started, kept', spec(), node('a', {}, [{ key: 'dedicated', value: 'gpu', effect: 'NoSchedule' }]), false, true],
    ['NoExecute taint: not started, not kept', spec(), node('a', {}, [{ key: 'dedicated', effect: 'NoExecute' }]), false, false],
    ['tolerated taint', spec({ tolerations: [{ key: 'dedicated', operator: 'Exists' }] }), node('a', {}, [{ key: 'dedicated', effect: 'NoExecute' }]), true, true],
    ['PreferNoSchedule is no obstacle', spec(), node('a', {}, [{ key: 'x', effect: 'PreferNoSchedule' }]), true, true],
    ['unschedulable node: tolerated by every daemon pod', spec(), node('a', {}, [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }]), true, true],
    ['not-ready NoExecute: tolerated', spec(), node('a', {}, [{ key: 'node.kubernetes.io/not-ready', effect: 'NoExecute' }]), true, true],
    ['unreachable NoExecute: tolerated', spec(), node('a', {}, [{ key: 'node.kubernetes.io/unreachable', effect: 'NoExecute' }]), true, true],
    ['memory/disk/pid pressure: tolerated', spec(), node('a', {}, ['memory', 'disk', 'pid'].map((k) => ({ key: `node.kubernetes.io/${k}-pressure`, effect: 'NoSchedule' }))), true, true],
    ['network-unavailable: only with hostNetwork', spec(), node('a', {}, [{ key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' }]), false, true],
    ['network-unavailable with hostNetwork', spec({ hostNetwork: true }), node('a', {}, [{ key: 'node.kubernetes.io/network-unavailable', effect: 'NoSchedule' }]), true, true],
  ];
  for (const [what, s, n, run, keep] of cases) t.same(placement(s, n), { shouldRun: run, shouldContinueRunning: keep }, what);

  t.equal(daemonTolerations(false).length, 6);
  const pinned = spec({ tolerations: [{ key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule' }], affinity: { podAntiAffinity: {}, nodeAffinity: { requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [{ matchExpressions: [{ key: 'zone', operator: 'Exists' }] }] } } } });
  pinToNode(pinned, 'node-7');
  t.same((pinned.affinity as any).nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution, { nodeSelectorTerms: [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: ['node-7'] }] }] }, 'the required terms are replaced by the node name');
  t.ok((pinned.affinity as any).podAntiAffinity, 'other affinity kept');
  t.equal(pinned.tolerations!.length, 6, 'the template\'s own toleration is not doubled');
  t.equal(targetNode({ metadata: { name: 'p' }, spec: pinned } as Pod), 'node-7');
  t.equal(targetNode({ metadata: { name: 'p' }, spec: { ...pinned, nodeName: 'node-2' } } as Pod), 'node-2', 'a bound pod: its node');
});

const DS = resolveKind('daemonsets')!;
const NODES = resolveKind('nodes')!;
const PODS = resolveKind('pods')!;

t.test('DaemonSets against a real server', async (t) => {
  const c = await startWorkloadCluster(t, [(ctx) => new DaemonSetController(ctx)], { nodes: { count: 3 } });
  const { client } = c;
  const template = (image: string, extra: Record<string, unknown> = {}) => ({ metadata: { labels: { app: 'agent' } }, spec: { containers: [{ name: 'a', image }], ...extra } });
  const mk = (name: string, s: Record<string, unknown> = {}) => client.create<DaemonSetObj>(resourcePath(DS, 'default'), {
    apiVersion: 'apps/v1', kind: 'DaemonSet', metadata: { name }, spec: { selector: { matchLabels: { app: 'agent' } }, template: template('agent:1'), ...s },
  });
  const patchDs = (name: string, p: Record<string, unknown>) => client.patch(resourcePath(DS, 'default', name), p, 'application/merge-patch+json');
  const patchNode = (name: string, p: Record<string, unknown>) => client.patch(resourcePath(NODES, '', name), p, 'application/merge-patch+json');
  const settled = (name: string, want: Record<string, number>) => waitFor(`${name} ${JSON.stringify(want)}`, async () => {
    const d = await client.get<DaemonSetObj>(resourcePath(DS, 'default', name));
    const st = (d.status ?? {}) as Record<string, number>;
    return d.status?.observedGeneration === d.metadata.generation && Object.entries(want).every(([k, v]) => (st[k] ?? 0) === v) ? d : undefined;
  }, 30_000);
  const nodesOf = async (uid: string) => (await c.podsOf('default', uid)).filter((p) => !p.metadata.deletionTimestamp).map((p) => p.spec?.nodeName ?? '?').sort();

  t.test('one pod per node, pinned and bound; a nodeSelector follows node labels', async (t) => {
    const d = await mk('agent');
    await settled('agent', { desiredNumberScheduled: 3, currentNumberScheduled: 3, numberReady: 3, numberAvailable: 3, updatedNumberScheduled: 3, numberMisscheduled: 0 });
    t.same(await nodesOf(d.metadata.uid!), ['node-1', 'node-2', 'node-3']);
    const p = (await c.podsOf('default', d.metadata.uid!))[0]!;
    t.same((p.spec?.affinity as any)?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms, [{ matchFields: [{ key: 'metadata.name', operator: 'In', values: [p.spec?.nodeName] }] }]);
    t.ok(p.metadata.labels?.[CONTROLLER_REVISION_HASH], 'controller-revision-hash label');
    t.equal(p.metadata.labels?.['pod-template-generation'], '1');
    t.ok((p.spec?.tolerations ?? []).some((x) => x.key === 'node.kubernetes.io/unreachable' && x.effect === 'NoExecute'), 'daemon tolerations');
    if (!kubectlMissing(t)) {
      const r = await c.kubectl('rollout', 'status', 'daemonset/agent', '--timeout=30s');
      t.equal(r.code, 0, r.err);
      t.match(r.out, /daemon set "agent" successfully rolled out/);
      const got = await c.kubectl('get', 'daemonset', 'agent');
      t.match(got.out, /^agent\s+3\s+3\s+3\s+3\s+3\s+<none>/m);
    }
    await client.delete(resourcePath(DS, 'default', 'agent'));

    const s = await mk('ssd', { selector: { matchLabels: { app: 'ssd' } }, template: { ...template('agent:1', { nodeSelector: { disk: 'ssd' } }), metadata: { labels: { app: 'ssd' } } } });
    await settled('ssd', { desiredNumberScheduled: 0, currentNumberScheduled: 0 });
    await patchNode('node-2', { metadata: { labels: { disk: 'ssd' } } });
    await settled('ssd', { desiredNumberScheduled: 1, numberReady: 1 });
    t.same(await nodesOf(s.metadata.uid!), ['node-2']);
    await patchNode('node-3', { metadata: { labels: { disk: 'ssd' } } });
    await settled('ssd', { desiredNumberScheduled: 2, numberReady: 2 });
    await patchNode('node-2', { metadata: { labels: { disk: null } } });
    await settled('ssd', { desiredNumberScheduled: 1, currentNumberScheduled: 1, numberMisscheduled: 0 });
    await waitFor('node-2\'s pod gone', async () => JSON.stringify(await nodesOf(s.metadata.uid!)) === '["node-3"]', 20_000);
    t.pass('pods follow the label');
    await client.delete(resourcePath(DS, 'default', 'ssd'));
  });

  t.test('taints: NoSchedule keeps a running pod and starts none; NoExecute removes it', async (t) => {
    const d = await mk('tainted', { selector: { matchLabels: { app: 'tainted' } }, template: { ...template('agent:1'), metadata: { labels: { app: 'tainted' } } } });
    await settled('tainted', { desiredNumberScheduled: 3, numberReady: 3 });
    await patchNode('node-1', { spec: { taints: [{ key: 'dedicated', value: 'db', effect: 'NoSchedule' }] } });
    const st = await settled('tainted', { desiredNumberScheduled: 2, currentNumberScheduled: 2, numberMisscheduled: 1 });
    t.ok(st);
    t.same(await nodesOf(d.metadata.uid!), ['node-1', 'node-2', 'node-3'], 'the pod on node-1 stays');
    await patchNode('node-1', { spec: { taints: [{ key: 'dedicated', value: 'db', effect: 'NoExecute' }] } });
    await waitFor('node-1\'s pod removed', async () => JSON.stringify(await nodesOf(d.metadata.uid!)) === '["node-2","node-3"]', 20_000);
    await settled('tainted', { desiredNumberScheduled: 2, numberMisscheduled: 0 });
    // An unschedulable node still runs daemon pods (they tolerate it).
    await patchNode('node-1', { spec: { taints: [{ key: 'node.kubernetes.io/unschedulable', effect: 'NoSchedule' }], unschedulable: true } });
    await settled('tainted', { desiredNumberScheduled: 3, numberReady: 3 });
    await patchNode('node-1', { spec: { taints: null, unschedulable: null } });
    await client.delete(resourcePath(DS, 'default', 'tainted'));
  });

  // Every pod event of a rolling DaemonSet: nodes with a ready pod, and live pods.
  const watch = new Informer<Pod>({ client, nats: c.nats.url, kind: PODS, name: 'ds-pods' });
  await watch.start();
  t.teardown(() => watch.stop());
  const bounds = (app: string) => {
    const seen = { minReadyNodes: Infinity, maxLive: 0, events: 0 };
    const check = () => {
      const pods = watch.list('default').filter((p) => p.metadata.labels?.app === app && !p.metadata.deletionTimestamp);
      const readyNodes = new Set(pods.filter((p) => p.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True')).map((p) => p.spec?.nodeName));
      seen.minReadyNodes = Math.min(seen.minReadyNodes, readyNodes.size);
      seen.maxLive = Math.max(seen.maxLive, pods.length);
      seen.events++;
    };
    const off = watch.addEventHandler({ onAdd: check, onUpdate: check, onDelete: check });
    return { seen, off };
  };

  t.test('RollingUpdate maxUnavailable 1: never two nodes without a ready pod', async (t) => {
    const d = await mk('ru', { selector: { matchLabels: { app: 'ru' } }, template: { ...template('agent:1'), metadata: { labels: { app: 'ru' } } } });
    const first = await settled('ru', { desiredNumberScheduled: 3, numberReady: 3, updatedNumberScheduled: 3 });
    const b = bounds('ru');
    await patchDs('ru', { spec: { template: { ...template('agent:2'), metadata: { labels: { app: 'ru' } } } } });
    await settled('ru', { desiredNumberScheduled: 3, numberReady: 3, numberAvailable: 3, updatedNumberScheduled: 3 });
    b.off();
    const images = (await c.podsOf('default', d.metadata.uid!)).filter((p) => !p.metadata.deletionTimestamp).map((p) => p.spec?.containers[0]?.image);
    t.same(images, ['agent:2', 'agent:2', 'agent:2']);
    t.ok(b.seen.events > 6, `${b.seen.events} pod events`);
    t.ok(b.seen.minReadyNodes >= 2, `at least 3 - 1 nodes had a ready pod at every event (min ${b.seen.minReadyNodes})`);
    t.ok(b.seen.maxLive <= 3, `never more than one pod per node (max ${b.seen.maxLive})`);
    t.ok(first);
    if (!kubectlMissing(t)) {
      const r = await c.kubectl('rollout', 'status', 'daemonset/ru', '--timeout=30s');
      t.match(r.out, /successfully rolled out/);
    }
  });

  t.test('RollingUpdate maxSurge 1, maxUnavailable 0: a new pod beside the old one, never a node without', async (t) => {
    await mk('surge', {
      selector: { matchLabels: { app: 'surge' } }, template: { ...template('agent:1'), metadata: { labels: { app: 'surge' } } },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
    });
    await settled('surge', { desiredNumberScheduled: 3, numberReady: 3 });
    const b = bounds('surge');
    await patchDs('surge', { spec: { template: { ...template('agent:2'), metadata: { labels: { app: 'surge' } } } } });
    await waitFor('all new', async () => {
      const pods = watch.list('default').filter((p) => p.metadata.labels?.app === 'surge' && !p.metadata.deletionTimestamp);
      return pods.length === 3 && pods.every((p) => p.spec?.containers[0]?.image === 'agent:2');
    }, 30_000);
    await settled('surge', { numberReady: 3, updatedNumberScheduled: 3 });
    b.off();
    t.equal(b.seen.minReadyNodes, 3, 'every node kept a ready pod at every event');
    t.ok(b.seen.maxLive <= 4, `at most 3 + 1 pods (max ${b.seen.maxLive})`);
    t.ok(b.seen.maxLive >= 4, 'a surge pod existed');
  });

  t.test('OnDelete: replaced only when deleted', async (t) => {
    const d = await mk('od', {
      selector: { matchLabels: { app: 'od' } }, template: { ...template('agent:1'), metadata: { labels: { app: 'od' } } }, updateStrategy: { type: 'OnDelete' },
    });
    await settled('od', { numberReady: 3, updatedNumberScheduled: 3 });
    await patchDs('od', { spec: { template: { ...template('agent:2'), metadata: { labels: { app: 'od' } } } } });
    await settled('od', { numberReady: 3, updatedNumberScheduled: 0 });
    const victim = (await c.podsOf('default', d.metadata.uid!)).find((p) => p.spec?.nodeName === 'node-2')!;
    await client.delete(resourcePath(PODS, 'default', victim.metadata.name));
    await settled('od', { numberReady: 3, updatedNumberScheduled: 1 });
    const images = (await c.podsOf('default', d.metadata.uid!)).filter((p) => !p.metadata.deletionTimestamp).map((p) => `${p.spec?.nodeName}=${p.spec?.containers[0]?.image}`).sort();
    t.same(images, ['node-1=agent:1', 'node-2=agent:2', 'node-3=agent:1']);
  });
});
