// The server side of metrics.k8s.io without a cluster: which reports are
// accepted (and the clear errors for the others), how long samples are
// served, a node's report replacing its earlier one, and the paths served;
// and the choice of the default StorageClass.
import t from 'tap';
import { pickDefaultStorageClass } from '../api/kinds/storage.ts';
import { metricsSubject } from '../api/metrics.ts';
import { parseMetricsPath } from '../apiserver/resource-metrics/api.ts';
import { ResourceMetricsCache, checkReport } from '../apiserver/resource-metrics/cache.ts';

const good = {
  node: 'n1', timestamp: '2026-01-01T00:00:00Z', window: '10s', usage: { cpu: '2', memory: '1Gi' },
  pods: [{ namespace: 'default', name: 'a', containers: [{ name: 'c', usage: { cpu: '250m', memory: '64Mi' } }] }],
};

t.test('report checks', async (t) => {
  t.same(checkReport(good), good, 'a well-formed report is taken as it is');
  const bad: [string, unknown, RegExp][] = [
    ['not an object', [], /must be a JSON object/],
    ['no node', { ...good, node: '' }, /report.node/],
    ['bad timestamp', { ...good, timestamp: 'yesterday' }, /RFC 3339/],
    ['bad window', { ...good, window: 'ten seconds' }, /duration/],
    ['pods not a list', { ...good, pods: {} }, /report.pods must be an array/],
    ['pod without namespace', { ...good, pods: [{ name: 'a', containers: [] }] }, /need a namespace and a name/],
    ['bad quantity', { ...good, pods: [{ namespace: 'd', name: 'a', containers: [{ name: 'c', usage: { cpu: 'lots', memory: '1' } }] }] }, /"lots" is not a non-negative quantity/],
    ['missing memory', { ...good, pods: [{ namespace: 'd', name: 'a', containers: [{ name: 'c', usage: { cpu: '1' } }] }] }, /usage.memory must be a quantity string/],
  ];
  for (const [what, v, re] of bad) t.throws(() => checkReport(v), re, what);
  t.equal(metricsSubject('node-1'), 'metrics.pods.node-1');
  t.throws(() => metricsSubject('a.b'), /cannot be a NATS subject token/);
});

t.test('cache: retention and replacement', async (t) => {
  let now = 1000;
  const cache = new ResourceMetricsCache(120_000, () => now);
  cache.ingest(checkReport(good));
  t.match(cache.pod('default', 'a'), { node: 'n1', containers: [{ name: 'c', usage: { cpu: '250m' } }] });
  t.match(cache.node('n1'), { usage: { cpu: '2', memory: '1Gi' } });
  cache.ingest({ ...good, pods: [{ namespace: 'default', name: 'b', containers: [] }] });
  t.equal(cache.pod('default', 'a'), undefined, 'a pod missing from its node\'s next report is gone');
  t.ok(cache.pod('default', 'b'));
  now += 120_001;
  t.equal(cache.pod('default', 'b'), undefined, 'older than the retention: not served');
  t.equal(cache.node('n1'), undefined);
  cache.prune();
  t.same(cache.size, { pods: 0, nodes: 0 });
});

t.test('paths', async (t) => {
  t.equal(parseMetricsPath('/apis/metrics.k8s.io'), 'group');
  t.equal(parseMetricsPath('/apis/metrics.k8s.io/v1beta1'), 'version');
  t.same(parseMetricsPath('/apis/metrics.k8s.io/v1beta1/pods'), { resource: 'pods', name: undefined });
  t.same(parseMetricsPath('/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods/p'), { resource: 'pods', namespace: 'ns', name: 'p' });
  t.same(parseMetricsPath('/apis/metrics.k8s.io/v1beta1/nodes/n1'), { resource: 'nodes', name: 'n1' });
  t.throws(() => parseMetricsPath('/apis/metrics.k8s.io/v1/pods'), /could not find/);
  t.throws(() => parseMetricsPath('/apis/metrics.k8s.io/v1beta1/services'), /could not find/);
});

t.test('the default StorageClass', async (t) => {
  const sc = (name: string, def: string | undefined, created: string) => ({
    metadata: { name, creationTimestamp: created, annotations: def === undefined ? {} : { 'storageclass.kubernetes.io/is-default-class': def } },
  });
  t.equal(pickDefaultStorageClass([sc('a', undefined, '2026-01-01T00:00:00Z'), sc('b', 'false', '2026-01-01T00:00:00Z')]), undefined, 'no class marked "true"');
  t.equal(pickDefaultStorageClass([sc('old', 'true', '2026-01-01T00:00:00Z'), sc('new', 'true', '2026-02-01T00:00:00Z')])?.metadata.name, 'new', 'the newest default wins');
  t.equal(pickDefaultStorageClass([sc('z', 'true', '2026-01-01T00:00:00Z'), sc('y', 'true', '2026-01-01T00:00:00Z')])?.metadata.name, 'y', 'same age: the first name');
  const beta = { metadata: { name: 'beta', annotations: { 'storageclass.beta.kubernetes.io/is-default-class': 'true' } } };
  t.equal(pickDefaultStorageClass([beta])?.metadata.name, 'beta', 'the beta annotation counts');
});
