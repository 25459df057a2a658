// LIST is served from an ordered index of each resource's keys, kept while
// only updates happen and rebuilt after a create or a delete; and a LIST body
// is encoded straight into the response's buffers (sendJsonParts) with the
// bytes a joined string would have had.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { encodeCommand } from '../apiserver/command.ts';
import { ObjectStore } from '../apiserver/store.ts';
import { sendJsonParts } from '../apiserver/http/io.ts';

const ts = '2026-01-01T00:00:00Z';
let index = 0;
const apply = (s: ObjectStore, cmd: Parameters<typeof encodeCommand>[0]) => s.apply({ index: ++index, term: 1, data: encodeCommand(cmd) });
const obj = (ns: string, name: string, v: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns, uid: `u-${ns}-${name}` }, data: { v } });
const create = (s: ObjectStore, ns: string, name: string, v = '0') => apply(s, { op: 'create', res: '/configmaps', ns, name, user: 'u', verb: 'create', ts, obj: obj(ns, name, v) });
const update = (s: ObjectStore, ns: string, name: string, v: string) => apply(s, { op: 'update', res: '/configmaps', ns, name, user: 'u', verb: 'update', ts, obj: obj(ns, name, v), pre: {} });
const del = (s: ObjectStore, ns: string, name: string) => apply(s, { op: 'delete', res: '/configmaps', ns, name, user: 'u', verb: 'delete', ts, pre: {}, grace: 0 });
const keys = (s: ObjectStore, ns?: string) => s.list('/configmaps', ns).map((x) => x.key);

t.test('list: sorted keys, namespaces as ranges, fresh after creates, updates and deletes', async (t) => {
  const s = new ObjectStore();
  // Namespaces that are prefixes of each other, and names that sort around '/' and '0'.
  for (const [ns, name] of [['b', 'z'], ['a', 'm'], ['a-b', 'x'], ['ab', 'a'], ['a', 'a'], ['a0', 'q'], ['a', 'a.b']]) create(s, ns, name);
  t.same(keys(s), ['a-b/x', 'a/a', 'a/a.b', 'a/m', 'a0/q', 'ab/a', 'b/z']);
  t.same(keys(s, 'a'), ['a/a', 'a/a.b', 'a/m'], 'only namespace a, not a-b, a0 or ab');
  t.same(keys(s, 'ab'), ['ab/a']);
  t.same(keys(s, 'none'), []);
  t.same(keys(s, 'c'), [], 'past the last key');
  create(s, 'a', 'b');
  t.same(keys(s, 'a'), ['a/a', 'a/a.b', 'a/b', 'a/m'], 'a create shows in the next list');
  update(s, 'a', 'b', '1');
  t.same(JSON.parse(s.list('/configmaps', 'a')[2].obj.json).data, { v: '1' }, 'an update shows the new object through the kept index');
  del(s, 'a', 'a.b');
  t.same(keys(s, 'a'), ['a/a', 'a/b', 'a/m'], 'a delete leaves the index');
  t.same(s.list('/secrets', undefined), []);
  // A restored snapshot replaces the index too.
  const r = new ObjectStore();
  create(r, 'zz', 'only');
  t.same(keys(r), ['zz/only']);
  r.restore(s.snapshot(), index);
  t.same(keys(r), keys(s), 'after restore: the snapshot\'s keys, in order');
});

t.test('sendJsonParts: the same bytes as the joined string, across buffer boundaries', async (t) => {
  const big = JSON.stringify({ v: 'é'.repeat(600_000) }); // > 1 MiB in UTF-8
  const items = [...Array.from({ length: 3000 }, (_, i) => JSON.stringify({ i, s: `ü€𝄞-${'x'.repeat(i % 700)}` })), big, '{"last":true}'];
  const cases: [string, string[]][] = [['empty', []], ['one', ['{"a":1}']], ['many', items]];
  const srv = createServer((req, res) => {
    const c = cases.find(([n]) => req.url === `/${n}`)!;
    sendJsonParts(res, 200, '{"kind":"ConfigMapList","items":[', c[1], ']}', req);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => srv.close());
  const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  for (const [n, list] of cases) {
    const want = Buffer.from(`{"kind":"ConfigMapList","items":[${list.join(',')}]}`);
    const r = await request(`${url}/${n}`);
    const got = Buffer.from(await r.body.arrayBuffer());
    t.equal(r.headers['content-length'], String(want.length), `${n}: content-length`);
    t.ok(got.equals(want), `${n}: identical bytes`);
  }
  const y = await request(`${url}/one`, { headers: { accept: 'application/yaml' } });
  t.equal(y.headers['content-type'], 'application/yaml');
  t.match(await y.body.text(), /kind: ConfigMapList/);
});
