// `flotilla describe` and `flotilla get events`: the describer's layout from
// objects (pure), then against a real server: a Pod and a Deployment with
// their Events at the bottom (selected by involved object, not by name alone),
// a generic kind, `get events` columns, `--for`, `-A` and `-w`.
import { spawn } from 'node:child_process';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { main as describe } from '../bin/commands/describe.ts';
import { describeObject, describeTime, eventAge } from '../bin/commands/describer.ts';
import { main as get } from '../bin/commands/get.ts';
import type { Io } from '../bin/commands/runtime.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { FLOTILLA_BIN, ROOT, waitFor } from '../harness/procs.ts';

const NOW = Date.parse('2026-01-01T12:00:00Z');

t.test('describer layout', async (t) => {
  t.equal(describeTime('2026-01-01T12:00:00Z'), 'Thu, 01 Jan 2026 12:00:00 +0000');
  t.equal(eventAge({ metadata: {}, lastTimestamp: '2026-01-01T11:55:00Z', firstTimestamp: '2026-01-01T11:40:00Z', count: 3 }, NOW), '5m (x3 over 20m)');
  t.equal(eventAge({ metadata: {}, lastTimestamp: '2026-01-01T11:59:50Z', count: 1 }, NOW), '10s');
  const cm = describeObject({
    apiVersion: 'v1', kind: 'ConfigMap',
    metadata: { name: 'cfg', namespace: 'default', labels: { b: '2', a: '1' }, creationTimestamp: '2026-01-01T11:00:00Z', ownerReferences: [{ kind: 'Deployment', name: 'web', controller: true }] as never },
    data: { key: 'value' },
  }, { kind: 'ConfigMap', namespaced: true, events: [], now: NOW });
  t.equal(cm, [
    'Name:               cfg',
    'Namespace:          default',
    'Labels:             a=1',
    '                    b=2',
    'Annotations:        <none>',
    'CreationTimestamp:  Thu, 01 Jan 2026 11:00:00 +0000',
    'Controlled By:      Deployment/web',
    'Data:',
    '  key:  value',
    'Events:  <none>',
    '',
  ].join('\n'), 'generic kinds: metadata, then every field as a tree');
  const withEvents = describeObject({ metadata: { name: 'p', namespace: 'default' }, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } }, {
    kind: 'Pod', namespaced: true, now: NOW,
    events: [
      { metadata: {}, type: 'Warning', reason: 'BackOff', message: 'back-off', lastTimestamp: '2026-01-01T11:59:00Z', firstTimestamp: '2026-01-01T11:50:00Z', count: 4, source: { component: 'kubelet' } },
      { metadata: {}, type: 'Normal', reason: 'Scheduled', message: 'assigned', lastTimestamp: '2026-01-01T11:49:00Z', source: { component: 'default-scheduler' } },
    ],
  });
  t.match(withEvents, /Status:\s+Running/);
  const deploy = describeObject({
    metadata: { name: 'web', namespace: 'default' },
    spec: { replicas: 3, selector: { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'tier', operator: 'In', values: ['a', 'b'] }] }, strategy: { type: 'Recreate' } },
    status: { replicas: 3, updatedReplicas: 2, availableReplicas: 1, unavailableReplicas: 2, conditions: [{ type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable', message: 'Deployment does not have minimum availability.' }] },
  }, { kind: 'Deployment', namespaced: true, events: [], now: NOW });
  t.match(deploy, /Selector:\s+app=web,tier in \(a,b\)\nReplicas:\s+3 desired \| 2 updated \| 3 total \| 1 available \| 2 unavailable\nStrategyType:\s+Recreate\n/);
  t.match(deploy, /Conditions:\n  Type\s+Status\s+Reason\s+Message\n  ----\s+------\s+------\s+-------\n  Available\s+False\s+MinimumReplicasUnavailable\s+Deployment does not have minimum availability.\n/);
  t.match(withEvents, /Events:\n  Type\s+Reason\s+Age\s+From\s+Message\n  ----\s+------\s+---\s+----\s+-------\n  Normal\s+Scheduled\s+11m\s+default-scheduler\s+assigned\n  Warning\s+BackOff\s+60s \(x4 over 10m\)\s+kubelet\s+back-off\n$/,
    'events oldest first, repeats with their count');
});

t.test('against a real server', async (t) => {
  const cluster = await FlotillaCluster.start(1);
  t.teardown(() => cluster.stop());
  const server = cluster.urls[0];
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const capture = () => {
    let out = '';
    let err = '';
    const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s), stdin: process.stdin };
    return { io, get out() { return out; }, get err() { return err; } };
  };
  const run = async (fn: typeof describe, ...args: string[]) => {
    const c = capture();
    const before = process.exitCode;
    await fn([...args, '--server', server], c.io);
    const failed = process.exitCode === 1 && before !== 1;
    process.exitCode = before;
    return { out: c.out, err: c.err, failed };
  };
  const PODS = resolveKind('pods')!;
  const EVENTS = resolveKind('events')!;
  const pod = await client.create(resourcePath(PODS, 'default'), {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web', labels: { app: 'web' } }, spec: { nodeName: 'n1', containers: [{ name: 'c', image: 'nginx:1.27', ports: [{ containerPort: 80 }] }] },
  });
  const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString().replace(/\.\d+Z$/, 'Z');
  const mkEvent = (name: string, involved: Record<string, unknown>, reason: string, message: string, type = 'Normal', lastAgo = 30) => client.create(resourcePath(EVENTS, 'default'), {
    apiVersion: 'v1', kind: 'Event', metadata: { name }, involvedObject: { namespace: 'default', ...involved },
    reason, message, type, count: 1, firstTimestamp: ago(lastAgo), lastTimestamp: ago(lastAgo), source: { component: 'test-controller' },
  });
  await mkEvent('web.1', { kind: 'Pod', name: 'web', uid: pod.metadata!.uid, apiVersion: 'v1' }, 'Scheduled', 'Successfully assigned default/web to n1', 'Normal', 60);
  await mkEvent('web.2', { kind: 'Pod', name: 'web', uid: pod.metadata!.uid, apiVersion: 'v1' }, 'Failed', 'Error: image not found', 'Warning', 10);
  await mkEvent('old-web.1', { kind: 'Pod', name: 'web', uid: 'an-earlier-pod', apiVersion: 'v1' }, 'Killing', 'an earlier pod of the same name');
  await mkEvent('cfg.1', { kind: 'ConfigMap', name: 'web', apiVersion: 'v1' }, 'Odd', 'about a configmap named web');

  await t.test('describe pod: summary and its own Events only', async (t) => {
    const r = await run(describe, 'pod', 'web');
    t.notOk(r.failed, r.err);
    t.match(r.out, /^Name:\s+web\nNamespace:\s+default\nLabels:\s+app=web\n/);
    t.match(r.out, /Node:\s+n1\nStatus:\s+Pending\n/);
    t.match(r.out, /Containers:\n  c:\n    Image:\s+nginx:1.27\n    Port:\s+80\/TCP\n/);
    t.match(r.out, /Events:\n  Type\s+Reason\s+Age\s+From\s+Message\n.*\n  Normal\s+Scheduled\s+6\ds\s+test-controller\s+Successfully assigned default\/web to n1\n  Warning\s+Failed\s+1\ds\s+test-controller\s+Error: image not found\n$/);
    t.notMatch(r.out, /earlier pod|configmap named web/, 'events of another uid or kind are not shown');
    const missing = await run(describe, 'pod', 'nope');
    t.ok(missing.failed);
    t.match(missing.err, /Error from server \(NotFound\): pods "nope" not found/);
    const usage = await run(describe, 'pod');
    t.match(usage.err, /describe needs a kind and at least one name/);
  });

  await t.test('describe a namespace and a generic kind', async (t) => {
    const ns = await run(describe, 'namespace', 'default');
    t.match(ns.out, /^Name:\s+default\nLabels:\s+kubernetes.io\/metadata.name=default\n/);
    t.match(ns.out, /Status:\s+Active\n/);
    t.notMatch(ns.out, /^Namespace:/m, 'cluster-scoped: no Namespace line');
    await client.create(resourcePath(resolveKind('configmaps')!, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web' }, data: { a: 'b' } });
    const cm = await run(describe, 'cm/web');
    t.match(cm.out, /Data:\n  a:\s+b\n/);
    t.match(cm.out, /Events:\s+<none>\n$/, 'the event about a ConfigMap named web has no uid match');
  });

  await t.test('get events: kubectl columns, --for, -A', async (t) => {
    const all = await run(get, 'events');
    t.notOk(all.failed, all.err);
    const lines = all.out.trimEnd().split('\n');
    t.match(lines[0], /^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE$/);
    t.equal(lines.length, 5, 'four events');
    t.match(all.out, /Warning\s+Failed\s+pod\/web\s+Error: image not found/);
    const forPod = await run(get, 'events', '--for', 'pod/web');
    t.equal(forPod.out.trimEnd().split('\n').length, 4, '--for pod/web: the three events about pods named web');
    t.notMatch(forPod.out, /configmap/);
    const forCm = await run(get, 'ev', '--for', 'configmap/web');
    t.match(forCm.out, /Odd\s+configmap\/web/);
    const allNs = await run(get, 'events', '-A');
    t.match(allNs.out, /^NAMESPACE\s+LAST SEEN\s+TYPE/);
    const wrong = await run(get, 'pods', '--for', 'pod/web');
    t.match(wrong.err, /--for is only supported with events/);
  });

  await t.test('get events -w prints new events', async (t) => {
    const child = spawn(process.execPath, [FLOTILLA_BIN, 'get', 'events', '-w', '--server', server], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    await waitFor('the initial list', async () => out.includes('Successfully assigned'), 15_000, 50);
    await mkEvent('web.3', { kind: 'Pod', name: 'web', uid: pod.metadata!.uid }, 'Pulled', 'Container image pulled', 'Normal', 1);
    await waitFor('the new event', async () => /Normal\s+Pulled\s+pod\/web\s+Container image pulled/.test(out), 15_000, 50);
    t.pass('a new event shows up');
  });
});
