// Test helpers that damage a stopped member's Raft log on purpose, to check
// that RaftStorage.load() notices. Never imported by production code.
import { Level } from 'level';
import { HARD_STATE_KEY, entryKey } from './storage.ts';

/**
 * Flips bits in the stored value under `key` (the database must not be open
 * elsewhere). Flips a payload byte rather than the checksum so the damage
 * looks like bit rot in the data.
 */
async function corruptKey(dir: string, key: Uint8Array, what: string): Promise<void> {
  const db = new Level<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    const value = await db.get(key);
    if (value === undefined) throw new Error(`${what} not found in ${dir}`);
    const damaged = new Uint8Array(value);
    // Records are [crc32 (4 bytes)][payload]; hit the middle of the payload
    // (or the checksum itself if the payload is empty).
    const at = damaged.length > 4 ? 4 + Math.floor((damaged.length - 4) / 2) : 0;
    damaged[at] = damaged[at]! ^ 0xff;
    await db.put(key, damaged, { sync: true });
  } finally {
    await db.close();
  }
}

/** Damages the stored raft log entry at `index`. */
export async function corruptEntry(dir: string, index: number): Promise<void> {
  await corruptKey(dir, entryKey(index), `raft log entry ${index}`);
}

/** Damages the stored hard state. */
export async function corruptHardState(dir: string): Promise<void> {
  await corruptKey(dir, HARD_STATE_KEY, 'raft hard state');
}
