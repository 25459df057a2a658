// Snapshots by size: a member snapshots (and drops the log it keeps in
// memory) once enough bytes were applied, whatever the entry count; a
// follower that lagged past the in-memory log catches up from the snapshot.
// Three in-process RaftNodes on loopback. No timed assertions: waits have
// generous deadlines only so that a hang fails instead of blocking.
import { pack } from 'msgpackr';
import pino from 'pino';
import t, { type Test } from 'tap';
import { KvStateMachine } from '../raft/examples/kv/main.ts';
import { RaftNode, decodeSnapshotEnvelope, encodeSnapshotEnvelope, resetPackBuffer } from '../raft/node.ts';
import { RaftStorage } from '../raft/storage.ts';
import { Role } from '../raft/types.ts';
import { freePorts, tempDir, waitFor } from '../harness/procs.ts';

const SNAPSHOT_BYTES = 64 * 1024;
const VALUE = 1000;

interface Member { id: string; dir: string; sm: KvStateMachine; node?: RaftNode }

async function cluster(t: Test): Promise<{ members: Member[]; peers: Map<string, string>; start: (m: Member) => Promise<void> }> {
  const ports = await freePorts(3);
  const peers = new Map(ports.map((p, i) => [`n${i + 1}`, `127.0.0.1:${p}`]));
  const base = tempDir('raft-snapbytes');
  const members: Member[] = [...peers.keys()].map((id) => ({ id, dir: `${base}/${id}`, sm: new KvStateMachine() }));
  const start = async (m: Member) => {
    m.sm = new KvStateMachine();
    m.node = await RaftNode.start({
      id: m.id, peers, dataDir: m.dir, stateMachine: m.sm, logger: pino({ level: 'silent' }),
      tickMs: 20, snapshotEntries: 1_000_000, snapshotBytes: SNAPSHOT_BYTES,
    });
  };
  for (const m of members) await start(m);
  t.teardown(async () => {
    for (const m of members) await m.node?.stop();
  });
  return { members, peers, start };
}

function leaderOf(members: Member[]): Member | undefined {
  return members.find((m) => m.node && m.node.role === Role.Leader);
}

async function put(members: Member[], k: string, v: string): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const l = await waitFor('a leader', () => leaderOf(members), 30_000);
    try {
      const r = await l.node!.propose(pack({ op: 'put', k, v: new TextEncoder().encode(v) }));
      return r.index;
    } catch (e) {
      if (attempt > 20) throw e;
    }
  }
}

t.test('a snapshot is taken by size, and the in-memory log stays bounded by bytes', async (t) => {
  const { members } = await cluster(t);
  let maxInMemory = 0;
  let last = 0;
  // 400 entries of ~1 KB: far fewer than snapshotEntries, ~6× snapshotBytes.
  for (let i = 0; i < 400; i++) {
    last = await put(members, `k${i % 50}`, `${i}`.padEnd(VALUE, '.'));
    for (const m of members) {
      const s = m.node!.status();
      maxInMemory = Math.max(maxInMemory, s.lastIndex - s.firstIndex + 1);
    }
  }
  for (const m of members) {
    const s = m.node!.status();
    t.ok(s.firstIndex > 1, `${m.id} compacted its log by size (first index ${s.firstIndex} of ${last})`);
  }
  // Each entry is ~1 KB plus framing: the in-memory log never held much more than the byte budget.
  t.ok(maxInMemory < (2 * SNAPSHOT_BYTES) / VALUE, `at most ${maxInMemory} entries in memory at once`);
});

t.test('a follower that lagged past the in-memory log catches up from a snapshot', async (t) => {
  const { members, start } = await cluster(t);
  for (let i = 0; i < 20; i++) await put(members, `a${i}`, 'early');
  const leader = await waitFor('a leader', () => leaderOf(members), 30_000);
  const lagger = members.find((m) => m !== leader)!;
  await lagger.node!.stop();
  lagger.node = undefined;
  let last = 0;
  for (let i = 0; i < 300; i++) last = await put(members, `b${i}`, `${i}`.padEnd(VALUE, '#'));
  const ls = leader.node!.status();
  t.ok(ls.firstIndex > 21, `the leader no longer holds the entries the follower lacks (first ${ls.firstIndex})`);
  await start(lagger);
  await waitFor('the follower to catch up', () => lagger.node!.appliedIndex >= last, 60_000);
  t.equal(lagger.sm.map.size, 320, 'every key is there');
  t.equal(new TextDecoder().decode(lagger.sm.map.get('b299')), '299'.padEnd(VALUE, '#'));
  t.equal(new TextDecoder().decode(lagger.sm.map.get('a0')), 'early');
  // What it restored is on its disk: a restart needs no leader to get there.
  await lagger.node!.stop();
  lagger.node = undefined;
  const st = await RaftStorage.open(lagger.dir);
  const loaded = await st.load();
  await st.close();
  t.ok((loaded.snapshot?.meta.index ?? 0) > 21, `snapshot on disk at ${loaded.snapshot?.meta.index}`);
});

t.test('snapshot envelope: one exact-size buffer; envelopes of the earlier format still read', async (t) => {
  const app = pack({ rows: Array.from({ length: 20_000 }, (_, i) => ['r', `k${i}`, 'v'.repeat(200)]) });
  const data = encodeSnapshotEnvelope({ peers: { s1: '127.0.0.1:1' }, app, hash: 'h1' });
  resetPackBuffer();
  t.equal(data.buffer.byteLength, data.length, 'the envelope owns exactly its bytes');
  const env = decodeSnapshotEnvelope(data);
  t.same(env.peers, { s1: '127.0.0.1:1' });
  t.equal(env.hash, 'h1');
  t.equal(Buffer.compare(Buffer.from(env.app), Buffer.from(app)), 0, 'application bytes intact');
  t.ok(pack({ x: 1 }).buffer.byteLength < app.length, 'later small packs no longer share a snapshot-sized buffer');
  const legacy = decodeSnapshotEnvelope(pack({ peers: { s2: '127.0.0.1:2' }, app: new Uint8Array([1, 2, 3]), hash: 'h0' }));
  t.same(legacy.peers, { s2: '127.0.0.1:2' });
  t.same([...legacy.app], [1, 2, 3]);
});
