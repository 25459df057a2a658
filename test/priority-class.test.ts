// PriorityClass (scheduling.k8s.io/v1) and the Priority admission plugin on
// a real server: the two system classes exist from the start, a pod's
// priorityClassName becomes spec.priority and preemptionPolicy, the global
// default class applies to pods without one, and Kubernetes' refusals.
import t from 'tap';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { waitFor } from '../harness/procs.ts';

const PCS = resolveKind('priorityclasses')!;
const PODS = resolveKind('pods')!;

const pc = (name: string, value: number, extra: Record<string, unknown> = {}): KubeObject => ({ apiVersion: 'scheduling.k8s.io/v1', kind: 'PriorityClass', metadata: { name }, value, ...extra });
const pod = (name: string, spec: Record<string, unknown> = {}): KubeObject => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'busybox' }], ...spec } });

/** The request's error (undefined when it was accepted). */
async function refusal(p: Promise<unknown>): Promise<ApiClientError | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e as ApiClientError;
  }
}

t.test('PriorityClass and priority admission', async (t) => {
  const cluster = await FlotillaCluster.start(1);
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());

  const system = await waitFor('the system classes', async () => {
    const l = await c.list<KubeObject & { value: number }>(resourcePath(PCS));
    return l.items.length >= 2 ? l.items : undefined;
  }, 20_000, 100);
  t.same(system.map((x) => [x.metadata!.name, x.value]).sort(), [['system-cluster-critical', 2_000_000_000], ['system-node-critical', 2_000_001_000]]);

  await c.create(resourcePath(PCS), pc('high', 1000, { description: 'important' }));
  await c.create(resourcePath(PCS), pc('never', 500, { preemptionPolicy: 'Never' }));
  const high = await c.create<Pod>(resourcePath(PODS, 'default'), pod('a', { priorityClassName: 'high' }));
  t.equal(high.spec?.priority, 1000, 'priorityClassName resolved to spec.priority');
  t.equal(high.spec?.preemptionPolicy, 'PreemptLowerPriority');
  const never = await c.create<Pod>(resourcePath(PODS, 'default'), pod('b', { priorityClassName: 'never' }));
  t.equal(never.spec?.preemptionPolicy, 'Never', 'the class\'s preemption policy');
  const crit = await c.create<Pod>(resourcePath(PODS, 'default'), pod('crit', { priorityClassName: 'system-node-critical' }));
  t.equal(crit.spec?.priority, 2_000_001_000);
  const plain = await c.create<Pod>(resourcePath(PODS, 'default'), pod('c'));
  t.equal(plain.spec?.priority, 0, 'no class, no default: 0');
  t.equal(plain.spec?.priorityClassName, undefined);
  t.ok(await c.create(resourcePath(PODS, 'default'), pod('same', { priorityClassName: 'high', priority: 1000 })), 'a stated priority equal to the class\'s is accepted');

  { const e = await refusal(c.create(resourcePath(PODS, 'default'), pod('d', { priorityClassName: 'nope' }))); t.equal(e?.code, 403, 'an unknown class'); t.match(e?.message, 'pods "d" is forbidden: no PriorityClass with name nope was found', 'an unknown class'); }
  {
    const e = await refusal(c.create(resourcePath(PODS, 'default'), pod('e', { priorityClassName: 'high', priority: 5 })));
    t.equal(e?.code, 403, 'a stated priority that differs');
    t.equal(e?.message, 'pods "e" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name');
  }
  { const e = await refusal(c.create(resourcePath(PCS), pc('system-mine', 10))); t.equal(e?.code, 422, 'the system- prefix'); t.match(e?.message, /priority class names with 'system-' prefix are reserved for system use only/, 'the system- prefix'); }
  { const e = await refusal(c.create(resourcePath(PCS), pc('huge', 1_000_000_001))); t.equal(e?.code, 422, 'a value above 10⁹'); t.match(e?.message, /maximum allowed value of a user defined priority is 1000000000/, 'a value above 10⁹'); }
  const cur = await c.get<KubeObject & { value: number }>(resourcePath(PCS, '', 'high'));
  { const e = await refusal(c.update(resourcePath(PCS, '', 'high'), { ...cur, value: 2000 })); t.equal(e?.code, 422, 'value is immutable'); t.match(e?.message, /may not be changed in an update/, 'value is immutable'); }

  await c.create(resourcePath(PCS), pc('default-low', 10, { globalDefault: true }));
  await c.create(resourcePath(PCS), pc('default-lower', 5, { globalDefault: true }));
  const dflt = await c.create<Pod>(resourcePath(PODS, 'default'), pod('f'));
  t.equal(dflt.spec?.priorityClassName, 'default-lower', 'the global default class (the lowest of two)');
  t.equal(dflt.spec?.priority, 5);
});
