// DefaultTolerationSeconds admission: pods get bounded tolerations of the
// not-ready and unreachable NoExecute taints unless they already tolerate them.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import type { Pod } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';
import { addDefaultTolerations, parseTolerationSeconds } from '../apiserver/http/default-toleration-seconds.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';

const NR = 'node.kubernetes.io/not-ready';
const UR = 'node.kubernetes.io/unreachable';
const dflt = (key: string, s: number) => ({ key, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: s });

t.test('which pods get which default tolerations', async (t) => {
  const cases: [string, unknown[] | undefined, unknown[]][] = [
    ['no tolerations: both added', undefined, [dflt(NR, 300), dflt(UR, 60)]],
    ['tolerates not-ready already: only unreachable added', [{ key: NR, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 5 }],
      [{ key: NR, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 5 }, dflt(UR, 60)]],
    ['a not-ready toleration with no effect covers NoExecute', [{ key: NR, operator: 'Exists' }], [{ key: NR, operator: 'Exists' }, dflt(UR, 60)]],
    ['a NoSchedule toleration does not count', [{ key: UR, operator: 'Exists', effect: 'NoSchedule' }],
      [{ key: UR, operator: 'Exists', effect: 'NoSchedule' }, dflt(NR, 300), dflt(UR, 60)]],
    ['an empty key with Exists tolerates everything: nothing added', [{ operator: 'Exists' }], [{ operator: 'Exists' }]],
    ['an empty key limited to NoExecute: nothing added', [{ operator: 'Exists', effect: 'NoExecute' }], [{ operator: 'Exists', effect: 'NoExecute' }]],
    ['other tolerations are kept', [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }],
      [{ key: 'gpu', operator: 'Exists', effect: 'NoSchedule' }, dflt(NR, 300), dflt(UR, 60)]],
  ];
  for (const [name, tolerations, want] of cases) {
    const pod = { spec: { containers: [], ...(tolerations ? { tolerations: structuredClone(tolerations) } : {}) } };
    addDefaultTolerations(pod, { notReadySeconds: 300, unreachableSeconds: 60 });
    t.same(pod.spec.tolerations, want, name);
  }
  t.equal(parseTolerationSeconds('0', '--x'), 0);
  t.throws(() => parseTolerationSeconds('-1', '--x'), /--x: expected a whole number/);
  t.throws(() => parseTolerationSeconds('5m', '--x'), /--x/);
});

t.test('the server admits pods with the configured seconds; updates keep them; subresources are not admitted', async (t) => {
  const cluster = await FlotillaCluster.start(1, { args: ['--default-not-ready-toleration-seconds', '7', '--default-unreachable-toleration-seconds', '9'] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const PODS = kindByName('pods')!;
  const pod = await c.create<Pod>(resourcePath(PODS, 'default'), {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'x' }] },
  });
  t.same(pod.spec?.tolerations, [dflt(NR, 7), dflt(UR, 9)], 'create adds both');
  const own = await c.create<Pod>(resourcePath(PODS, 'default'), {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'q' },
    spec: { containers: [{ name: 'c', image: 'x' }], tolerations: [{ key: UR, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 1 }] },
  });
  t.same(own.spec?.tolerations, [{ key: UR, operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 1 }, dflt(NR, 7)], 'an own toleration wins');
  // A kubectl-style update that sends the spec without the defaults gets them back (the pod update rules forbid removing tolerations).
  const { tolerations: _drop, ...spec } = pod.spec!;
  const updated = await c.update<Pod>(resourcePath(PODS, 'default', 'p'), { ...pod, metadata: { ...pod.metadata, labels: { a: 'b' } }, spec });
  t.same(updated.spec?.tolerations, [dflt(NR, 7), dflt(UR, 9)], 'update re-adds what the body left out');
  const status = await c.update<Pod>(resourcePath(PODS, 'default', 'p', 'status'), { ...updated, status: { ...updated.status, phase: 'Running' } });
  t.same(status.spec?.tolerations, [dflt(NR, 7), dflt(UR, 9)], 'status writes leave the spec alone');
});
