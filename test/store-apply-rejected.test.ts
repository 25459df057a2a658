// The object store (the API server's Raft state machine) applies a committed
// entry it cannot decode, or a command with malformed fields, as a no-op that
// it counts and reports: never a throw, which would stop every member.
import t from 'tap';
import { pack } from 'msgpackr';
import { encodeCommand } from '../apiserver/command.ts';
import { ObjectStore } from '../apiserver/store.ts';

t.test('undecodable and malformed commands are counted no-ops', async (t) => {
  const store = new ObjectStore();
  const seen: { index: number; reason: string }[] = [];
  store.on('rejected', (r) => seen.push(r));
  const base = { res: '/configmaps', ns: 'default', name: 'a', user: 'u', verb: 'create' as const, ts: '2026-01-01T00:00:00Z' };
  const entries = [
    Buffer.from([0xc1]), // not msgpack
    pack({ hello: 'world' }), // not a command
    encodeCommand({ ...base, op: 'create', obj: '{not json' }),
    pack({ ...base, op: 'create', obj: 5 }), // obj not a string
    pack({ ...base, op: 'create', obj: 'null' }),
  ];
  entries.forEach((data, i) => t.doesNotThrow(() => store.apply({ index: i + 1, term: 1, data })));
  t.equal(store.rejectedEntries, entries.length, 'every one is counted');
  t.same(seen.map((s) => s.index), [1, 2, 3, 4, 5], 'and reported with its index');
  t.equal(store.revision, 0, 'nothing changed the revision');
  t.equal(store.list('/configmaps', 'default').length, 0, 'nothing was stored');

  const ok = store.apply({ index: 6, term: 1, data: encodeCommand({ ...base, op: 'create', obj: JSON.stringify({ metadata: { name: 'a', namespace: 'default' } }) }) });
  t.ok(ok.ok, 'a good command after them applies');
  t.equal(store.revision, 6);
});
