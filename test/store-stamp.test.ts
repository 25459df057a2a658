// The store writes an object's resourceVersion into the proposed JSON text
// instead of serializing the whole object again (stampText); what it stores
// must parse to exactly what a full serialization would give.
import t from 'tap';
import { encodeCommand } from '../apiserver/command.ts';
import { ObjectStore, encodeObject, stampText } from '../apiserver/store.ts';

t.test('stampText: inserts or replaces the resourceVersion, or declines', async (t) => {
  const cases: Record<string, unknown>[] = [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a', labels: { x: 'y' } }, data: { k: 'v "q" \\ é' } },
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: {} },
    { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'd' }, spec: { template: { metadata: { labels: { a: 'b' } } } } },
  ];
  for (const o of cases) {
    const text = encodeObject(o);
    const parsed = JSON.parse(text);
    const stamped = stampText(text, parsed, undefined, '42')!;
    t.ok(stamped, 'laid out by encodeObject: stamped in place');
    const want = structuredClone(o) as { metadata: Record<string, unknown> };
    want.metadata.resourceVersion = '42';
    t.same(JSON.parse(stamped), want, 'parses to the object with the resourceVersion');
    // Stamping again replaces it (the delete of an unchanged stored object).
    const again = stampText(stamped, JSON.parse(stamped), '42', '43')!;
    want.metadata.resourceVersion = '43';
    t.same(JSON.parse(again), want, 'replaced, not duplicated');
    t.equal(again.split('"resourceVersion"').length, 2, 'one resourceVersion key in the text');
  }
  const only = stampText('{"apiVersion":"v1","kind":"X","metadata":{"resourceVersion":"1"}}', { apiVersion: 'v1', kind: 'X' }, '1', '2');
  t.equal(only, '{"apiVersion":"v1","kind":"X","metadata":{"resourceVersion":"2"}}');
  // Not laid out so: declined (the caller serializes).
  t.equal(stampText('{"kind":"X","apiVersion":"v1","metadata":{}}', { apiVersion: 'v1', kind: 'X' }, undefined, '1'), undefined, 'other key order');
  t.equal(stampText('{"apiVersion":"v1","kind":"X","metadata":{"name":"a","resourceVersion":"1"}}', { apiVersion: 'v1', kind: 'X' }, '1', '2'), undefined, 'an old resourceVersion not first');
  t.equal(stampText('{"apiVersion":"v1","kind":"X","metadata":null}', { apiVersion: 'v1', kind: 'X' }, undefined, '1'), undefined, 'metadata not an object');
  t.equal(stampText('{"apiVersion":1,"kind":"X","metadata":{}}', { apiVersion: 1, kind: 'X' }, undefined, '1'), undefined, 'apiVersion not a string');
  // encodeObject puts apiVersion, kind and metadata first and keeps everything.
  const moved = { spec: { template: { metadata: { name: 'inner' } } }, metadata: { name: 'outer' }, kind: 'Deployment', apiVersion: 'apps/v1' };
  const enc = encodeObject(moved);
  t.match(enc, /^\{"apiVersion":"apps\/v1","kind":"Deployment","metadata":\{"name":"outer"\}/);
  t.same(JSON.parse(enc), moved);
});

t.test('the store: stamped objects equal full serializations, through create, update and delete', async (t) => {
  const s = new ObjectStore();
  let index = 0;
  const ts = '2026-01-01T00:00:00Z';
  const apply = (cmd: Parameters<typeof encodeCommand>[0]) => s.apply({ index: ++index, term: 1, data: encodeCommand(cmd) });
  const base = { user: 'u', ts, res: '/configmaps', ns: 'n' } as const;
  // Proposed in another key order (an older member's text): serialized in full, same meaning.
  for (const [name, text] of [
    ['laid-out', encodeObject({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'laid-out', namespace: 'n', uid: 'u1', finalizers: ['f'] }, data: { a: '1' } })],
    ['other-order', JSON.stringify({ metadata: { name: 'other-order', namespace: 'n', uid: 'u2' }, data: { a: '1' }, kind: 'ConfigMap', apiVersion: 'v1' })],
  ] as const) {
    const r = apply({ ...base, op: 'create', verb: 'create', name, obj: text });
    t.ok(r.ok);
    const stored = s.get('/configmaps', 'n', name)!;
    const want = JSON.parse(text);
    want.metadata.resourceVersion = String(index);
    t.same(JSON.parse(stored.json), want, `${name}: created with its resourceVersion`);
    t.equal(stored.rv, index);
    const upd = JSON.parse(stored.json);
    delete upd.metadata.resourceVersion;
    upd.data.a = '2';
    apply({ ...base, op: 'update', verb: 'update', name, obj: encodeObject(upd), pre: { rv: stored.rv } });
    upd.metadata.resourceVersion = String(index);
    t.same(JSON.parse(s.get('/configmaps', 'n', name)!.json), upd, `${name}: updated`);
  }
  // Delete of an object with a finalizer: marked (changed, serialized); then the finalizer removed: gone, stamped.
  const events: { type: string; json: string }[] = [];
  s.on('event', (e) => events.push(e));
  apply({ ...base, op: 'delete', verb: 'delete', name: 'laid-out', pre: {}, grace: 0 });
  const marked = JSON.parse(s.get('/configmaps', 'n', 'laid-out')!.json);
  t.ok(marked.metadata.deletionTimestamp, 'marked for deletion');
  t.equal(marked.metadata.resourceVersion, String(index));
  delete marked.metadata.finalizers;
  delete marked.metadata.resourceVersion;
  apply({ ...base, op: 'update', verb: 'update', name: 'laid-out', obj: encodeObject(marked), pre: {} });
  t.equal(s.get('/configmaps', 'n', 'laid-out'), undefined, 'the last finalizer gone: deleted');
  marked.metadata.resourceVersion = String(index);
  t.same(JSON.parse(events[events.length - 1].json), marked, 'the DELETED event carries the final object');
  apply({ ...base, op: 'delete', verb: 'delete', name: 'other-order', pre: {}, grace: 0 });
  const gone = JSON.parse(events[events.length - 1].json);
  t.equal(gone.metadata.resourceVersion, String(index), 'a plain delete stamps the last state');
  t.equal(gone.data.a, '2');
});

t.test('the store: a Service keeps what apply time allocated (its stale text is not stamped)', async (t) => {
  const s = new ObjectStore();
  let index = 0;
  const ts = '2026-01-01T00:00:00Z';
  const apply = (cmd: Parameters<typeof encodeCommand>[0]) => s.apply({ index: ++index, term: 1, data: encodeCommand(cmd) });
  const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'n', uid: 's1' }, spec: { type: 'NodePort', ports: [{ port: 80 }] } };
  t.ok(apply({ user: 'u', ts, res: '/services', ns: 'n', op: 'create', verb: 'create', name: 'web', obj: encodeObject(svc) }).ok);
  const created = JSON.parse(s.get('/services', 'n', 'web')!.json);
  t.match(created.spec.clusterIP, /^127\./, 'the allocated cluster IP is stored');
  t.ok(created.spec.ports[0].nodePort >= 30000, 'and the node port');
  // An update adding a port without a node port gets one allocated at apply time.
  const upd = { ...svc, metadata: { ...svc.metadata }, spec: { type: 'NodePort', clusterIP: created.spec.clusterIP, ports: [created.spec.ports[0], { name: 'b', port: 81 }] } };
  created.spec.ports[0].name = 'a';
  t.ok(apply({ user: 'u', ts, res: '/services', ns: 'n', op: 'update', verb: 'update', name: 'web', obj: encodeObject(upd), pre: {} }).ok);
  const updated = JSON.parse(s.get('/services', 'n', 'web')!.json);
  t.equal(updated.spec.clusterIP, created.spec.clusterIP, 'the update keeps the cluster IP');
  t.ok(updated.spec.ports[1].nodePort >= 30000, 'the new port got its node port');
  t.equal(updated.metadata.resourceVersion, String(index));
});
