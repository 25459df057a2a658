// The examples are what a newcomer applies first: every manifest under
// examples/ must be accepted by a real server through the real kubectl
// (client-side kustomize, server-side validation, defaulting and admission).
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { ROOT, tempDir } from '../harness/procs.ts';

const missing = kubectlMissing(t);

t.test('every example applies cleanly', { skip: missing ?? false }, async (t) => {
  const c = await FlotillaCluster.start(1);
  t.teardown(() => c.stop());
  const cache = tempDir('kubectl-cache');
  const kubectl = (...args: string[]) => spawnSync('kubectl', ['--kubeconfig', c.kubeconfig, '--cache-dir', cache, ...args], { encoding: 'utf8', timeout: 60_000 });

  const dir = join(ROOT, 'examples', 'walkthrough');
  const dry = kubectl('apply', '--dry-run=server', '-k', dir);
  t.equal(dry.status, 0, `kubectl apply --dry-run=server -k examples/walkthrough: ${dry.stderr}`);
  const applied = kubectl('apply', '-k', dir);
  t.equal(applied.status, 0, `kubectl apply -k examples/walkthrough: ${applied.stderr}`);
  for (const what of ['deployment.apps/web', 'service/web', 'ingress.networking.k8s.io/web', 'horizontalpodautoscaler.autoscaling/web',
    'daemonset.apps/node-logger', 'statefulset.apps/counter', 'job.batch/sum', 'cronjob.batch/tick', 'configmap/greeting', 'secret/token', 'pod/config-demo']) {
    t.match(applied.stdout, new RegExp(`${what.replace(/\./g, '\\.')} created`), `${what} created`);
  }
  const labels = kubectl('get', 'deployment', 'web', '-o', 'jsonpath={.metadata.labels.walkthrough}');
  t.equal(labels.stdout, 'flotilla', 'the kustomization\'s labels were applied');
  // Every other YAML file under examples/ (outside the kustomization) too.
  for (const f of readdirSync(join(ROOT, 'examples')).filter((n) => n.endsWith('.yaml'))) {
    const r = kubectl('apply', '--dry-run=server', '-f', join(ROOT, 'examples', f));
    t.equal(r.status, 0, `examples/${f}: ${r.stderr}`);
  }
});
