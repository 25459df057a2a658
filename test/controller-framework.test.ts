// The controller framework's parts: the event correlator (dedup, aggregation,
// spam filter), expectations, --controllers selection, ownership claims, and
// against a real server: the recorder's Events and the FakeNodes harness.
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { resolveKind } from '../agents/client/kinds.ts';
import { newControllerContext, stopControllerContext } from '../agents/controllers/context.ts';
import { ControllerExpectations } from '../agents/controllers/expectations.ts';
import { claimObjects, controllerRef, podFromTemplate } from '../agents/controllers/ownership.ts';
import { selectControllers } from '../agents/controllers/registry.ts';
import type { KubeObject, Pod } from '../agents/informer/types.ts';
import { EventCorrelator, type EventInput } from '../agents/recorder/correlator.ts';
import { FakeNodes } from '../harness/fake-node.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';

const ev = (message: string, name = 'web', reason = 'SuccessfulCreate'): EventInput => ({
  type: 'Normal', reason, message, involvedObject: { kind: 'ReplicaSet', namespace: 'default', name, uid: `uid-${name}` }, source: { component: 'replicaset-controller' },
});

t.test('correlator: repeats update one event; many messages combine; a burst per object is capped', async (t) => {
  const c = new EventCorrelator({ burst: 25, refillMs: 300_000 });
  const first = c.observe(ev('Created pod: a'), 0);
  t.equal(first.action, 'create');
  if (first.action === 'create') c.stored(first.key, 'web.1');
  const again = c.observe(ev('Created pod: a'), 1000);
  t.match(again, { action: 'update', name: 'web.1', count: 2 }, 'the same event again: count 2 on the stored one');
  // Ten distinct messages are kept apart; the eleventh and later combine.
  for (let i = 0; i < 9; i++) {
    const d = c.observe(ev(`Created pod: m${i}`), 2000 + i);
    t.equal(d.action, 'create', `distinct message ${i} is its own event`);
    if (d.action === 'create') c.stored(d.key, `web.m${i}`);
  }
  const combined = c.observe(ev('Created pod: z'), 3000);
  t.match(combined, { action: 'create', message: '(combined from similar events): Created pod: z' });
  if (combined.action === 'create') c.stored(combined.key, 'web.combined');
  t.match(c.observe(ev('Created pod: y'), 3001), { action: 'update', name: 'web.combined', count: 2, message: '(combined from similar events): Created pod: y' });
  // 13 observed so far for this object: 12 more tokens, then drops.
  let dropped = 0;
  for (let i = 0; i < 20; i++) if (c.observe(ev('Created pod: y'), 4000).action === 'drop') dropped++;
  t.equal(dropped, 8, 'burst of 25 per object, then dropped');
  t.not(c.observe(ev('Created pod: y'), 4000 + 300_000).action, 'drop', 'one token back after the refill period');
  t.equal(c.observe(ev('Created pod: a', 'other'), 4000).action, 'create', 'another object has its own bucket');
});

t.test('expectations: unsatisfied until observed or expired', async (t) => {
  let now = 0;
  const e = new ControllerExpectations(() => now, 1000);
  t.ok(e.satisfied('ns/a'), 'nothing expected');
  e.expectCreations('ns/a', 2);
  t.notOk(e.satisfied('ns/a'));
  e.creationObserved('ns/a');
  t.notOk(e.satisfied('ns/a'));
  e.creationObserved('ns/a');
  t.ok(e.satisfied('ns/a'), 'both creations seen');
  e.expectDeletions('ns/a', ['ns/p1', 'ns/p2']);
  e.deletionObserved('ns/a', 'ns/p1');
  e.deletionObserved('ns/a', 'ns/p1');
  t.notOk(e.satisfied('ns/a'), 'a deletion seen twice counts once');
  e.deletionObserved('ns/a', 'ns/other');
  t.notOk(e.satisfied('ns/a'), 'an unexpected deletion does not count');
  now = 1001;
  t.ok(e.satisfied('ns/a'), 'expired');
});

t.test('--controllers selection', async (t) => {
  const all = ['a', 'b', 'c'].map((name) => ({ name, create: () => { throw new Error('unused'); } }));
  t.same(selectControllers('*', all).map((c) => c.name), ['a', 'b', 'c']);
  t.same(selectControllers('*,-b', all).map((c) => c.name), ['a', 'c']);
  t.same(selectControllers('c,a', all).map((c) => c.name), ['a', 'c']);
  t.throws(() => selectControllers('*,x', all), /unknown controller "x"/);
});

t.test('against a real server', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const client = new ApiClient(cluster.urls);
  t.teardown(() => client.close());
  const PODS = resolveKind('pods')!;
  const RS = resolveKind('replicasets')!;
  const EVENTS = resolveKind('events')!;

  t.test('FakeNodes binds pods, runs them, follows readiness and confirms deletion', async (t) => {
    const nodes = new FakeNodes({ client, nats: nats.url, count: 2 });
    await nodes.start();
    t.teardown(() => nodes.stop());
    const nodeList = await client.list(resourcePath(resolveKind('nodes')!));
    t.same(nodeList.items.map((n) => n.metadata!.name).sort(), ['node-1', 'node-2']);
    await client.create(resourcePath(PODS, 'default'), { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1' }, spec: { containers: [{ name: 'c', image: 'x' }] } });
    const running = async () => {
      const p = await client.get<Pod>(resourcePath(PODS, 'default', 'p1'));
      return p.status?.phase === 'Running' && p.status.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? p : undefined;
    };
    await waitFor('p1 running and ready', running, 15_000, 50);
    const p = (await running())!;
    t.ok(p.spec?.nodeName?.startsWith('node-'), 'bound to a fake node');
    nodes.setReady('default', 'p1', false);
    await waitFor('p1 not ready', async () => (await client.get<Pod>(resourcePath(PODS, 'default', 'p1'))).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'False', 15_000, 50);
    await client.delete(resourcePath(PODS, 'default', 'p1'));
    await waitFor('p1 gone', async () => !(await client.list(resourcePath(PODS, 'default'))).items.some((x) => x.metadata?.name === 'p1'), 15_000, 50);
    t.pass('graceful deletion confirmed by the fake node');
  });

  t.test('recorder: a repeated event is one Event with a count', async (t) => {
    const ctx = newControllerContext({ client, nats: nats.url });
    t.teardown(() => stopControllerContext(ctx));
    const rs = await client.create(resourcePath(RS, 'default'), {
      apiVersion: 'apps/v1', kind: 'ReplicaSet', metadata: { name: 'web' },
      spec: { replicas: 0, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', image: 'x' }] } } },
    });
    const rec = ctx.recorder('test-controller');
    for (let i = 0; i < 3; i++) rec.event(rs, 'Warning', 'FailedCreate', 'quota exceeded');
    await ctx.broadcaster.flush();
    const events = (await client.list(resourcePath(EVENTS, 'default'), { fieldSelector: 'involvedObject.name=web' })).items as (KubeObject & { count?: number; reason?: string; source?: { component?: string } })[];
    t.equal(events.length, 1, 'one Event');
    t.match(events[0], { count: 3, reason: 'FailedCreate', type: 'Warning', source: { component: 'test-controller' }, involvedObject: { kind: 'ReplicaSet', name: 'web', uid: rs.metadata!.uid } });

    t.test('claims adopt matching orphans and release what stops matching', async (t) => {
      const mk = (name: string, labels: Record<string, string>) => client.create(resourcePath(PODS, 'default'), {
        apiVersion: 'v1', kind: 'Pod', metadata: { name, labels }, spec: { containers: [{ name: 'c', image: 'x' }], nodeName: 'nowhere' },
      });
      const orphan = await mk('orphan', { app: 'web' });
      const stranger = await mk('stranger', { app: 'db' });
      const adopted = await claimObjects([orphan, stranger], { client, kind: PODS, owner: rs, selector: { matchLabels: { app: 'web' } } });
      t.same(adopted.map((p) => p.metadata!.name), ['orphan']);
      t.equal(controllerRef(adopted[0]!)?.uid, rs.metadata!.uid, 'controller reference set');
      const relabelled = await client.patch(resourcePath(PODS, 'default', 'orphan'), { metadata: { labels: { app: 'other' } } }, 'application/merge-patch+json');
      t.same(await claimObjects([relabelled], { client, kind: PODS, owner: rs, selector: { matchLabels: { app: 'web' } } }), []);
      t.equal(controllerRef(await client.get(resourcePath(PODS, 'default', 'orphan'))), undefined, 'released');
      const fromTemplate = podFromTemplate({ metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c' }] } }, rs);
      t.match(fromTemplate, { metadata: { generateName: 'web-', namespace: 'default', labels: { app: 'web' } } });
    });
  });
});
