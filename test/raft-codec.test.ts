import t from 'tap';
import protobuf from 'protobufjs';
import {
  CodecError, PROTO_PATH, decodeConfChange, decodeEntry, decodeHardState, decodeMessage, decodeProposal,
  encodeConfChange, encodeEntry, encodeHardState, encodeMessage, encodeProposal,
} from '../raft/codec.ts';
import { ConfChangeType, EMPTY, EntryType, MessageType, emptyMessage, type Message } from '../raft/types.ts';

const bytes = (...b: number[]) => new Uint8Array(b);

function full(): Message {
  return {
    type: MessageType.Snap, from: 'n1', to: 'n2', term: 9, logTerm: 8, index: 2 ** 40 + 5,
    entries: [
      { term: 8, index: 100, type: EntryType.Normal, data: bytes(1, 2, 3) },
      { term: 9, index: 101, type: EntryType.ConfChange, data: EMPTY },
    ],
    commit: 99, reject: true, rejectHint: 77, context: bytes(9),
    snapshot: { index: 50, term: 7, conf: { voters: ['n1', 'n2'], learners: ['n3'] } },
    snapOffset: 1 << 20, snapTotal: 3 << 20, snapData: bytes(4, 5),
  };
}

t.test('Message round-trips every field', async (t) => {
  const m = full();
  const d = decodeMessage(encodeMessage(m));
  t.same(d, m);
  t.equal(typeof d.index, 'number');
  t.equal(d.index, 2 ** 40 + 5);
  t.ok(d.context instanceof Uint8Array);
});

t.test('absent fields decode to defaults', async (t) => {
  const m = emptyMessage(MessageType.Heartbeat, 'a', 'b', 3);
  const d = decodeMessage(encodeMessage(m));
  t.same(d, m);
  t.equal(d.snapshot, undefined);
  t.same(d.entries, []);
  t.equal(d.context.length, 0);
  t.equal(d.snapData.length, 0);
  // Default arrays must be private to each result, not a shared instance.
  d.entries.push({ term: 1, index: 1, type: EntryType.Normal, data: EMPTY });
  t.same(decodeMessage(encodeMessage(m)).entries, []);
});

t.test('an empty snapshot metadata is still present after decoding', async (t) => {
  const m = emptyMessage(MessageType.Snap, 'a', 'b', 1);
  m.snapshot = { index: 0, term: 0, conf: { voters: [], learners: [] } };
  t.same(decodeMessage(encodeMessage(m)).snapshot, m.snapshot);
});

t.test('decoded bytes do not alias the input buffer', async (t) => {
  const buf = Buffer.from(encodeMessage(full()));
  const d = decodeMessage(buf);
  buf.fill(0);
  t.same(d.entries[0]!.data, bytes(1, 2, 3));
  t.same(d.snapData, bytes(4, 5));
});

t.test('garbage is rejected with a CodecError', async (t) => {
  t.throws(() => decodeMessage(bytes(0xff, 0xff, 0xff)), CodecError);
  t.throws(() => decodeMessage(bytes(0x08, 0x63)), { name: 'CodecError', message: /unknown message type 99/ });
  // Entry type 5 inside an otherwise valid message.
  const bad = encodeMessage({ ...full(), entries: [{ term: 1, index: 1, type: 5 as EntryType, data: EMPTY }] });
  t.throws(() => decodeMessage(bad), /unknown entry type 5/);
  // index beyond 2^53 cannot be represented as a JS number exactly.
  const huge = protobuf.Writer.create().uint32(6 << 3).uint64('18446744073709551615').finish();
  t.throws(() => decodeMessage(huge), /out of range/);
  t.throws(() => decodeEntry(bytes(0x0a)), CodecError);
  t.throws(() => decodeMessage('nope' as unknown as Uint8Array), /expected bytes/);
});

t.test('Entry, ConfChange, Proposal, HardState round-trip', async (t) => {
  const e = { term: 3, index: 12345678901, type: EntryType.ConfChange, data: bytes(7, 7) };
  t.same(decodeEntry(encodeEntry(e)), e);
  t.same(decodeEntry(encodeEntry({ term: 0, index: 0, type: EntryType.Normal, data: EMPTY })),
    { term: 0, index: 0, type: EntryType.Normal, data: EMPTY });

  const c = { type: ConfChangeType.AddLearner, nodeId: 'n4', context: Buffer.from('127.0.0.1:7000') };
  t.same(decodeConfChange(encodeConfChange(c)), { ...c, context: new Uint8Array(c.context) });
  t.throws(() => decodeConfChange(bytes(0x08, 0x09)), /unknown type 9/);

  const p = { origin: 'n1/1700000000', seq: 2 ** 33, payload: bytes(1) };
  t.same(decodeProposal(encodeProposal(p)), p);

  const h = { term: 5, vote: 'n2', commit: 40 };
  t.same(decodeHardState(encodeHardState(h)), h);
  t.same(decodeHardState(new Uint8Array(0)), { term: 0, vote: '', commit: 0 });
});

t.test('proto enums mirror the TS enums', async (t) => {
  // codec.ts refuses to load otherwise; this pins a few numbers explicitly.
  const root = protobuf.loadSync(PROTO_PATH);
  const mt = root.lookupEnum('flotilla.raft.MessageType').values;
  t.equal(mt.MSG_APP_RESP, MessageType.AppResp);
  t.equal(mt.MSG_TRANSFER_LEADER, MessageType.TransferLeader);
  t.equal(Object.keys(mt).length, Object.keys(MessageType).length / 2);
});

t.test('100k small messages encode+decode quickly', async (t) => {
  const m = emptyMessage(MessageType.App, '1', '2', 5);
  m.entries = [{ term: 5, index: 1, type: EntryType.Normal, data: new Uint8Array(64) }];
  const start = performance.now();
  for (let i = 0; i < 100_000; i++) {
    m.index = i;
    decodeMessage(encodeMessage(m));
  }
  const ms = performance.now() - start;
  t.comment(`100k App messages (1 entry of 64 B) encode+decode: ${ms.toFixed(0)} ms`);
  // Generous bound (typically ~100-150 ms): catches a pathological
  // regression without making a slow CI machine flaky.
  t.ok(ms < 3000, `took ${ms.toFixed(0)} ms`);
});
