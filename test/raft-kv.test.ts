// The Raft library in real processes: 3 raft-kv members, the leader killed
// with SIGKILL mid-write, restart from disk, and damaged data directories.
import t from 'tap';
import { corruptEntry } from '../raft/storage-debug.ts';
import { RaftStorage } from '../raft/storage.ts';
import { KvCluster } from './support/kv-cluster.ts';
import { sleep, waitFor } from './support/procs.ts';

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

t.test('a torn tail is truncated at start and the member recovers', async (t) => {
  const c = await KvCluster.start(3);
  t.teardown(() => c.stop());
  for (let i = 0; i < 50; i++) await c.put('1', `a${i}`, `x${i}`);
  const leader = await c.waitForLeader();
  const victim = ['1', '2', '3'].find((id) => id !== leader)!;
  await waitCaughtUp(c, ['1', '2', '3']);
  await c.kill(victim);
  const dir = c.member(victim).dataDir;
  const { last } = await lastStoredIndex(dir);
  await corruptEntry(dir, last);
  await corruptEntry(dir, last - 1);
  for (let i = 50; i < 80; i++) await c.put(leader, `a${i}`, `x${i}`);
  const p = c.startMember(victim);
  await waitCaughtUp(c, ['1', '2', '3']);
  for (let i = 0; i < 80; i++) t.equal(await c.get(victim, `a${i}`, { stale: true }), `x${i}`);
  t.equal(p.child.exitCode, null, 'the member is running');
  const { readFileSync } = await import('node:fs');
  t.match(readFileSync(p.logFile, 'utf8'), /torn tail/, 'the truncation is logged');
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
  const { readFileSync } = await import('node:fs');
  const out = readFileSync(p.logFile, 'utf8');
  t.match(out, new RegExp(`entry ${mid}\\b`), 'the error names the index');
  t.ok(out.includes(dir), 'the error names the data directory');
  // The other two keep serving.
  t.ok(await c.put('1', 'after', 'ok'));
});
