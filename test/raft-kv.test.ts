// The Raft library in real processes: 3 raft-kv members, the leader killed
// with SIGKILL mid-write, restart from disk, and damaged data directories.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { pack } from 'msgpackr';
import { encodeMessage, encodeProposal } from '../raft/codec.ts';
import { clusterIdFor } from '../raft/node.ts';
import { corruptEntry } from '../raft/storage-debug.ts';
import { RaftStorage } from '../raft/storage.ts';
import { KvCluster } from '../harness/kv-cluster.ts';
import { sleep, waitFor } from '../harness/procs.ts';
import { EntryType, type Message, MessageType, emptyMessage } from '../raft/types.ts';

/** Writes raw transport frames to a member's peer port, as a foreign process would; waits until they are sent. */
async function sendFrames(addr: string, msgs: (Message | Uint8Array)[]): Promise<void> {
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  const s = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  const frames = msgs.map((m) => {
    const body = m instanceof Uint8Array ? m : encodeMessage(m);
    const h = Buffer.alloc(4);
    h.writeUInt32BE(body.length);
    return Buffer.concat([h, body]);
  });
  await new Promise<void>((resolve) => s.end(Buffer.concat(frames), resolve));
}

/** Value of a Prometheus sample in a /metrics text (0 if absent). */
function metric(text: string, name: string): number {
  const esc = name.replace(/[{}"=]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${esc} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

async function lastStoredIndex(dir: string): Promise<{ first: number; last: number }> {
  const s = await RaftStorage.open(dir);
  await s.load();
  const r = { first: s.firstIndex, last: s.lastIndex };
  await s.close();
  return r;
}

/** Writes keys through random live members until stopped; returns what was acknowledged. */
function writer(c: KvCluster, prefix: string, live: () => string[]) {
  const acked = new Map<string, string>();
  let stop = false;
  let n = 0;
  let failures = 0;
  const loops = Array.from({ length: 4 }, async () => {
    while (!stop) {
      const key = `${prefix}-${n++}`;
      const ids = live();
      const id = ids[Math.floor(Math.random() * ids.length)];
      const value = `v-${key}`;
      try {
        await c.put(id, key, value, 3000);
        acked.set(key, value);
      } catch {
        failures++;
        await sleep(20);
      }
    }
  });
  return {
    acked,
    get failures() {
      return failures;
    },
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

async function waitCaughtUp(c: KvCluster, ids: string[]): Promise<void> {
  await waitFor('members to catch up', async () => {
    const st = await Promise.all(ids.map((id) => c.status(id)));
    if (st.some((s) => !s)) return false;
    const leader = st.find((s) => s!.role === 'leader');
    if (!leader) return false;
    return st.every((s) => s!.appliedIndex >= leader.commitIndex);
  }, 30_000);
}

t.test('kill -9 the leader while writing; every acknowledged write survives everywhere', async (t) => {
  const c = await KvCluster.start(3, { args: ['--snapshot-entries', '300'] });
  t.teardown(() => c.stop());
  const dead = new Set<string>();
  const w = writer(c, 'k', () => c.members.map((m) => m.id).filter((id) => !dead.has(id)));
  await waitFor('some writes', () => w.acked.size >= 200, 30_000);
  const oldLeader = await c.waitForLeader();
  dead.add(oldLeader);
  await c.kill(oldLeader);
  const before = w.acked.size;
  const newLeader = await c.waitForLeader([oldLeader]);
  t.not(newLeader, oldLeader, `a new leader (${newLeader}) took over from ${oldLeader}`);
  await waitFor('writes under the new leader', () => w.acked.size >= before + 300, 30_000);
  c.startMember(oldLeader);
  dead.delete(oldLeader);
  await waitFor('more writes with all members', () => w.acked.size >= before + 600, 30_000);
  await w.stop();
  t.ok(w.acked.size >= 800, `${w.acked.size} writes acknowledged (${w.failures} failed during the failover)`);
  await waitCaughtUp(c, ['1', '2', '3']);
  for (const m of c.members) {
    let missing = 0;
    for (const [k, v] of w.acked) {
      if ((await c.get(m.id, k, { stale: true })) !== v) missing++;
    }
    t.equal(missing, 0, `member ${m.id} holds all ${w.acked.size} acknowledged writes`);
  }
  // Linearizable reads through every member see the last acknowledged writes.
  const sample = [...w.acked].slice(-20);
  for (const m of c.members) {
    for (const [k, v] of sample) t.equal(await c.get(m.id, k), v);
  }
});

t.test('garbage proposals and forged messages from a foreign process: the cluster keeps serving and restarts cleanly', async (t) => {
  const c = await KvCluster.start(3);
  t.teardown(() => c.stop());
  for (let i = 0; i < 10; i++) await c.put('1', `g${i}`, `v${i}`);
  const leader = await c.waitForLeader();
  const follower = ['1', '2', '3'].find((id) => id !== leader)!;
  const cluster = clusterIdFor(['1', '2', '3'], c.token);
  const entry = (data: Uint8Array) => ({ term: 0, index: 0, type: EntryType.Normal, data });
  const prop = (from: string, data: Uint8Array[], clusterId = cluster): Message => {
    const m = emptyMessage(MessageType.Prop, from, leader, 0);
    m.entries = data.map(entry);
    m.clusterId = clusterId;
    return m;
  };
  const before = (await c.status(leader))!.commitIndex;
  await sendFrames(c.member(leader).peer, [
    // Claiming to be a member (only the cluster ID is checked; there is no
    // authentication): the entries are committed, and must be harmless.
    prop(follower, [
      Buffer.from([0xff, 0xff, 0xff, 0xff]), // not a proposal envelope
      encodeProposal({ origin: 'evil', seq: 1, payload: Buffer.from([0xc1]) }), // not msgpack
      encodeProposal({ origin: 'evil', seq: 2, payload: pack({ op: 'put', k: 5 }) }), // not a KV op
    ]),
    prop('evil', [encodeProposal({ origin: 'evil', seq: 3, payload: pack({ op: 'put', k: 'evil', v: Buffer.from('x') }) })]), // not a member
    prop(follower, [encodeProposal({ origin: 'evil', seq: 4, payload: pack({ op: 'put', k: 'evil', v: Buffer.from('x') }) })], 'another-cluster'),
  ]);
  // A forged App "from a member" with a huge term and garbage entries, of
  // another cluster and of none: it would depose the leader and overwrite its log.
  const app = (clusterId: string | undefined, to = leader): Message => {
    const m = emptyMessage(MessageType.App, follower === to ? leader : follower, to, 1000);
    m.index = 1;
    m.logTerm = 1;
    m.commit = 3;
    m.entries = [{ term: 1000, index: 2, type: EntryType.Normal, data: Buffer.from('garbage') }];
    if (clusterId) m.clusterId = clusterId;
    return m;
  };
  await sendFrames(c.member(leader).peer, [app('another-cluster'), app(undefined)]);
  await sendFrames(c.member(follower).peer, [app('another-cluster', follower)]);

  // The three garbage entries commit and apply everywhere as no-ops.
  await waitFor('the garbage entries applied everywhere', async () => {
    const st = await Promise.all(['1', '2', '3'].map((id) => c.status(id)));
    return st.every((s) => s && s.appliedIndex >= before + 3);
  }, 20_000);
  for (const id of ['1', '2', '3']) {
    const text = await c.metrics(id);
    t.equal(metric(text, 'raft_rejected_entries'), 1, `member ${id}: the entry that is no proposal is counted`);
    t.equal(metric(text, 'raftkv_rejected_entries'), 2, `member ${id}: the two payloads that are no KV op are counted`);
    t.match(readFileSync(c.member(id).proc!.logFile, 'utf8'), new RegExp(`entry ${before + 1} is not a proposal`), `member ${id} logs the index`);
  }
  const lm = await c.metrics(leader);
  t.equal(metric(lm, 'raft_transport_dropped_frames{reason="foreign-cluster"}'), 3, 'the leader dropped the 3 frames of another (or no) cluster');
  t.equal(metric(lm, 'raft_transport_dropped_frames{reason="unknown-sender"}'), 1, 'and the Prop from a non-member');
  t.equal(metric(await c.metrics(follower), 'raft_transport_dropped_frames{reason="foreign-cluster"}'), 1, 'the follower dropped the forged App');
  t.equal(await c.get(leader, 'evil'), undefined, 'nothing from the foreign process was written');
  t.equal((await c.status(leader))!.role, 'leader', 'the leader was not deposed');

  // The cluster keeps serving.
  await c.put(follower, 'after', 'ok');
  t.equal(await c.get(leader, 'after'), 'ok', 'writes and reads still work');

  // Every member restarts cleanly, replaying the garbage entries.
  await Promise.all(['1', '2', '3'].map((id) => c.kill(id)));
  for (const id of ['1', '2', '3']) c.startMember(id);
  const l2 = await c.waitForLeader();
  await c.put(l2, 'restarted', 'yes');
  await waitCaughtUp(c, ['1', '2', '3']);
  for (const id of ['1', '2', '3']) {
    t.equal(c.member(id).proc!.child.exitCode, null, `member ${id} runs after the restart`);
    t.equal(await c.get(id, 'g9', { stale: true }), 'v9', `member ${id} kept its data`);
    t.equal(await c.get(id, 'restarted', { stale: true }), 'yes', `member ${id} applies new writes`);
  }
});

t.test('a damaged tail is truncated at start; the member stays out of elections until a leader restores it', async (t) => {
  const c = await KvCluster.start(3);
  t.teardown(() => c.stop());
  for (let i = 0; i < 50; i++) await c.put('1', `a${i}`, `x${i}`);
  const leader = await c.waitForLeader();
  const [victim, other] = ['1', '2', '3'].filter((id) => id !== leader) as [string, string];
  await waitCaughtUp(c, ['1', '2', '3']);
  // The last writes are committed by the leader and the victim alone...
  await c.kill(other);
  for (let i = 50; i < 80; i++) await c.put(leader, `a${i}`, `x${i}`);
  await waitFor('the victim to hold every write', async () => {
    const [l, v] = await Promise.all([c.status(leader), c.status(victim)]);
    return l && v && v.lastIndex >= l.commitIndex;
  });
  // ...and the victim loses the last two of them.
  await c.kill(victim);
  const dir = c.member(victim).dataDir;
  const { last } = await lastStoredIndex(dir);
  await corruptEntry(dir, last);
  await corruptEntry(dir, last - 1);

  // Without the leader, neither the victim (truncated log) nor the other
  // member (missed the last writes) holds them: no leader may be elected. The
  // victim would have won the other's vote, and overwritten them.
  await c.kill(leader);
  const p = c.startMember(victim);
  c.startMember(other);
  const st = await waitFor('the victim to start', () => c.status(victim), 20_000);
  t.equal(st.noVoteUntil, last, `the victim may not campaign until its log is back to ${last}`);
  t.equal(st.lastIndex, last - 2, 'the two damaged entries were truncated');
  await waitFor('the other member to start', () => c.status(other), 20_000);
  await sleep(3000); // many election timeouts
  for (const id of [victim, other]) t.not((await c.status(id))?.role, 'leader', `${id} was not elected`);
  t.equal((await c.status(victim))!.noVoteUntil, last, 'the victim still waits');

  // The old leader comes back and leads again; it restores the victim.
  c.startMember(leader);
  await c.waitForLeader();
  await waitCaughtUp(c, ['1', '2', '3']);
  await waitFor('the victim to vote again', async () => (await c.status(victim))?.noVoteUntil === 0, 20_000);
  for (const id of ['1', '2', '3']) {
    let missing = 0;
    for (let i = 0; i < 80; i++) if ((await c.get(id, `a${i}`, { stale: true })) !== `x${i}`) missing++;
    t.equal(missing, 0, `member ${id} holds all 80 acknowledged writes`);
  }
  t.equal(p.child.exitCode, null, 'the victim is running');
  t.match(readFileSync(p.logFile, 'utf8'), /truncated a damaged tail/, 'the truncation is logged');

  // Restarted after catching up, it votes normally (the cleared marker was persisted).
  await c.kill(victim);
  c.startMember(victim);
  const again = await waitFor('the victim to restart', () => c.status(victim), 20_000);
  t.equal(again.noVoteUntil, 0, 'no marker after a restart');
});

t.test('corruption in the middle of the log refuses to start, naming the file and index', async (t) => {
  const c = await KvCluster.start(3);
  t.teardown(() => c.stop());
  for (let i = 0; i < 40; i++) await c.put('2', `b${i}`, `y${i}`);
  await waitCaughtUp(c, ['1', '2', '3']);
  await c.kill('3');
  const dir = c.member('3').dataDir;
  const { first, last } = await lastStoredIndex(dir);
  const mid = Math.floor((first + last) / 2);
  await corruptEntry(dir, mid);
  const p = c.startMember('3');
  const code = await Promise.race([p.exited, sleep(20_000).then(() => 'running')]);
  t.not(code, 'running', 'the member exits');
  t.not(code, 0, 'with a failure status');
  const out = readFileSync(p.logFile, 'utf8');
  t.match(out, new RegExp(`entry ${mid}\\b`), 'the error names the index');
  t.ok(out.includes(dir), 'the error names the data directory');
  // The other two keep serving.
  t.ok(await c.put('1', 'after', 'ok'));
});
