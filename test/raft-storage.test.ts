import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Level } from 'level';
import { pino } from 'pino';
import { RaftStorage, entryKey, crc32 } from '../raft/storage.ts';
import { corruptEntry, corruptHardState } from '../raft/storage-debug.ts';
import { EntryType, RaftError, type Entry, type Snapshot } from '../raft/types.ts';

const logger = pino({ level: 'silent' });
const open = (dir: string) => RaftStorage.open(dir, { logger });

function ents(from: number, to: number, term: number, size = 16): Entry[] {
  const out: Entry[] = [];
  for (let i = from; i <= to; i++) {
    out.push({ term, index: i, type: EntryType.Normal, data: new Uint8Array(size).fill(i & 0xff) });
  }
  return out;
}

function snap(index: number, term: number, data: Uint8Array = new Uint8Array([1, 2, 3])): Snapshot {
  return { meta: { index, term, conf: { voters: ['1', '2', '3'], learners: ['4'] } }, data };
}

/** Opens dir with a log of entries 1..n (term 1) and closes it again. */
async function seed(dir: string, n: number): Promise<void> {
  const s = await open(dir);
  await s.load();
  await s.save({ hardState: { term: 1, vote: '1', commit: 2 }, entries: ents(1, n, 1) });
  await s.close();
}

async function reload(dir: string) {
  const s = await open(dir);
  const loaded = await s.load();
  return { s, loaded };
}

const indexes = (es: Entry[]) => es.map((e) => e.index);

t.test('crc32 is the standard IEEE CRC-32', async (t) => {
  t.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
});

t.test('empty database loads as an empty log', async (t) => {
  const { s, loaded } = await reload(t.testdir());
  t.same(loaded, { hardState: { term: 0, vote: '', commit: 0 }, entries: [] });
  t.equal(s.firstIndex, 1);
  t.equal(s.lastIndex, 0);
  await s.close();
});

t.test('entries, hard state and snapshot survive close/reopen', async (t) => {
  const dir = t.testdir();
  let s = await open(dir);
  await s.load();
  await s.save({ hardState: { term: 3, vote: '2', commit: 4 }, entries: ents(1, 5, 1) });
  await s.save({ entries: ents(6, 10, 3) });
  await s.save({ hardState: { term: 3, vote: '2', commit: 9 }, entries: [] });
  await s.close();

  let { s: s2, loaded } = await reload(dir);
  t.same(loaded.hardState, { term: 3, vote: '2', commit: 9 });
  t.same(loaded.entries, [...ents(1, 5, 1), ...ents(6, 10, 3)]);
  t.equal(loaded.snapshot, undefined);
  t.ok(loaded.entries[0]!.data instanceof Uint8Array);
  await s2.saveSnapshot(snap(7, 3));
  await s2.close();

  ({ s, loaded } = await reload(dir));
  t.same(loaded.snapshot, snap(7, 3));
  t.same(indexes(loaded.entries), [8, 9, 10]);
  t.equal(s.firstIndex, 8);
  t.equal(s.lastIndex, 10);
  t.same(s.lastRecovery, { truncated: 0 });
  await s.close();
});

t.test('new entries replace a conflicting suffix', async (t) => {
  const dir = t.testdir();
  await seed(dir, 10);
  let { s, loaded } = await reload(dir);
  await s.save({ entries: ents(5, 7, 2) });
  t.equal(s.lastIndex, 7);
  // Appending after the overwrite continues from the new end.
  await s.save({ entries: ents(8, 8, 2) });
  await s.close();

  ({ s, loaded } = await reload(dir));
  t.same(loaded.entries, [...ents(1, 4, 1), ...ents(5, 8, 2)]);
  // And the deleted keys are really gone, not just hidden.
  await s.close();
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  t.equal(await db.get(entryKey(9)), undefined);
  t.equal(await db.get(entryKey(10)), undefined);
  await db.close();
});

t.test('writes that would leave a gap are refused', async (t) => {
  const dir = t.testdir();
  await seed(dir, 3);
  const { s } = await reload(dir);
  await t.rejects(s.save({ entries: ents(5, 6, 1) }), /gap/);
  await t.rejects(s.save({ entries: [...ents(4, 4, 1), ...ents(6, 6, 1)] }), /not contiguous/);
  await s.save({ entries: ents(4, 4, 1) });
  t.equal(s.lastIndex, 4);
  await s.close();
});

t.test('save before load is refused', async (t) => {
  const s = await open(t.testdir());
  await t.rejects(s.save({ entries: ents(1, 1, 1) }), /load\(\)/);
  await s.close();
});

t.test('compaction drops the covered prefix', async (t) => {
  const dir = t.testdir();
  await seed(dir, 20);
  let { s, loaded } = await reload(dir);
  await s.compact(snap(10, 1));
  t.equal(s.firstIndex, 11);
  t.equal(s.lastIndex, 20);
  // An older snapshot is ignored.
  await s.compact(snap(5, 1));
  // Entries the snapshot covers are skipped, the rest appended.
  await s.save({ entries: ents(9, 21, 1) });
  await s.close();

  ({ s, loaded } = await reload(dir));
  t.same(loaded.snapshot?.meta.index, 10);
  t.same(indexes(loaded.entries), ents(11, 21, 1).map((e) => e.index));
  await s.close();
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  t.equal(await db.get(entryKey(10)), undefined, 'compacted entries are deleted');
  t.equal(await db.get(entryKey(1)), undefined, 'compacted entries are deleted');
  await db.close();
});

t.test('a snapshot from the leader keeps the log suffix only if the log matches it', async (t) => {
  const dir = t.testdir();
  await seed(dir, 10);
  let { s, loaded } = await reload(dir);
  // Log holds (6, term 1): keep 7..10.
  await s.save({ snapshot: snap(6, 1), entries: [], hardState: { term: 1, vote: '', commit: 6 } });
  t.equal(s.firstIndex, 7);
  t.equal(s.lastIndex, 10);
  // Log holds index 8 but with term 1, not 2: the whole log goes.
  await s.save({ snapshot: snap(8, 2), entries: ents(9, 9, 2) });
  t.equal(s.firstIndex, 9);
  t.equal(s.lastIndex, 9);
  // Snapshot beyond the end of the log.
  await s.save({ snapshot: snap(50, 3), entries: [] });
  t.equal(s.lastIndex, 50);
  await s.close();

  ({ s, loaded } = await reload(dir));
  t.equal(loaded.snapshot?.meta.index, 50);
  t.same(loaded.entries, []);
  t.equal(s.firstIndex, 51);
  await s.save({ entries: ents(51, 52, 3) });
  await s.close();
  ({ s, loaded } = await reload(dir));
  t.same(indexes(loaded.entries), [51, 52]);
  await s.close();
});

t.test('damaged tail: bad records at the end are truncated, and the hard state forbids voting until they are back', async (t) => {
  for (const n of [1, 3]) {
    await t.test(`last ${n}`, async (t) => {
      const dir = t.testdir();
      await seed(dir, 10);
      for (let i = 10 - n + 1; i <= 10; i++) await corruptEntry(dir, i);
      let { s, loaded } = await reload(dir);
      t.same(indexes(loaded.entries), indexes(ents(1, 10 - n, 1)));
      t.same(s.lastRecovery, { truncated: n, from: 10 - n + 1, noVoteUntil: 10 });
      t.same(loaded.hardState, { term: 1, vote: '1', commit: 2, noVoteUntil: 10, noVoteTerm: 1 }, 'no vote until the log is back to 10');
      t.equal(s.lastIndex, 10 - n);
      // The log is writable again right after the truncation point.
      await s.save({ entries: ents(10 - n + 1, 10 - n + 1, 2) });
      await s.close();

      // A crash before the log is back: the marker is still there.
      ({ s, loaded } = await reload(dir));
      t.same(s.lastRecovery, { truncated: 0 }, 'the truncation was persisted');
      t.equal(loaded.entries.length, 10 - n + 1);
      t.equal(loaded.hardState.noVoteUntil, 10, 'the marker survives a restart');
      // The core clears it in the Ready whose entries reach 10 (see raft-sim tests).
      await s.save({ hardState: { term: 2, vote: '', commit: 10 }, entries: ents(10 - n + 2, 10, 2) });
      await s.close();
      ({ s, loaded } = await reload(dir));
      t.same(loaded.hardState, { term: 2, vote: '', commit: 10 }, 'cleared once written without it');
      await s.close();
    });
  }
});

t.test('a damaged tail beyond the persisted commit clamps the commit index', async (t) => {
  const dir = t.testdir();
  const s0 = await open(dir);
  await s0.load();
  await s0.save({ hardState: { term: 1, vote: '1', commit: 10 }, entries: ents(1, 10, 1) });
  await s0.close();
  await corruptEntry(dir, 9);
  await corruptEntry(dir, 10);
  const { s, loaded } = await reload(dir);
  t.same(loaded.hardState, { term: 1, vote: '1', commit: 8, noVoteUntil: 10, noVoteTerm: 1 });
  await s.close();
});

t.test('corruption in the middle refuses to start', async (t) => {
  const dir = t.testdir();
  await seed(dir, 10);
  await corruptEntry(dir, 5);
  const s = await open(dir);
  const err = await s.load().then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof RaftError, 'a RaftError');
  t.equal((err as RaftError).code, 'corrupt');
  t.match((err as Error).message, 'entry 5');
  t.match((err as Error).message, dir);
  t.match((err as Error).message, 'checksum mismatch');
  await s.close();

  // Nothing was deleted: the operator can still inspect/salvage it.
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  t.not(await db.get(entryKey(10)), undefined);
  await db.close();
});

t.test('a missing entry in the middle refuses to start', async (t) => {
  const dir = t.testdir();
  await seed(dir, 10);
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.del(entryKey(4));
  await db.close();
  const s = await open(dir);
  await t.rejects(s.load(), { code: 'corrupt', message: /entry 4 in .* \(missing/ });
  await s.close();
});

t.test('a corrupt hard state refuses to start', async (t) => {
  const dir = t.testdir();
  await seed(dir, 3);
  await corruptHardState(dir);
  const s = await open(dir);
  await t.rejects(s.load(), { name: 'RaftError', code: 'corrupt', message: /hard state in .*checksum mismatch/ });
  await s.close();
});

t.test('open errors name the directory', async (t) => {
  const dir = t.testdir();
  const s = await open(dir);
  // LevelDB holds a lock: a second open of the same directory fails.
  await t.rejects(open(dir), { message: new RegExp(`cannot open raft log database in ${dir}`) });
  await s.close();
});

t.test('a 20 MB snapshot round-trips', async (t) => {
  const dir = t.testdir();
  await seed(dir, 5);
  let { s, loaded } = await reload(dir);
  const data = randomBytes(20 * 1024 * 1024 + 123);
  await s.saveSnapshot(snap(5, 1, data));
  await s.close();

  ({ s, loaded } = await reload(dir));
  t.equal(loaded.snapshot!.data.length, data.length);
  t.ok(Buffer.from(loaded.snapshot!.data).equals(data), 'same bytes');
  t.same(loaded.entries, []);
  // A smaller replacement: the old extra chunks must not leak into it.
  const small = randomBytes(1000);
  await s.save({ snapshot: snap(9, 2, small), entries: [] });
  await s.close();

  ({ s, loaded } = await reload(dir));
  t.ok(Buffer.from(loaded.snapshot!.data).equals(small));
  t.equal(loaded.snapshot!.meta.index, 9);
  await s.close();
});

t.test('synced save latency (informational)', async (t) => {
  const { s } = await reload(t.testdir());
  const data = randomBytes(256);
  const n = 1000;
  const start = process.hrtime.bigint();
  for (let i = 1; i <= n; i++) {
    await s.save({ hardState: { term: 1, vote: '1', commit: i - 1 }, entries: [{ term: 1, index: i, type: EntryType.Normal, data }] });
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.comment(`${n} sequential synced saves of one 256-byte entry: ${ms.toFixed(0)} ms total, ${(ms / n * 1000).toFixed(0)} µs/save`);
  t.equal(s.lastIndex, n);
  await s.close();
});
