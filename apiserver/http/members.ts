// Where each member serves its API, and who may change the membership.
//
// Member API addresses are replicated through Raft in entries that only the
// servers themselves propose (the HTTP API cannot produce them): the
// directory is a thin state machine in front of the object store that takes
// those entries and passes every other entry on. Followers forward membership
// changes to the leader's address from this directory - never from an object a
// client can edit.
//
// Membership changes need the admin token: a random secret each server
// writes to <data>/admin-token (mode 0600) when it first starts. A server
// accepts its own token and the token of any current member (the directory
// holds their SHA-256), so a follower can forward the caller's token to the
// leader. Until authentication arrives, the endpoint also only answers callers
// on loopback or on a member's peer host.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StateMachine } from '../../raft/node.ts';
import type { ObjectStore } from '../store.ts';
import { ADMIN_TOKEN_FILE } from '../../api/cluster-files.ts';

/** Marks a directory entry in the log (never the start of an encoded API command). */
const ENTRY_MAGIC = Buffer.from('\u0000flotilla-member/1\u0000', 'latin1');
/** Ends a snapshot that carries the directory after the store's own bytes. */
const SNAPSHOT_MAGIC = Buffer.from('FLMEMBR1', 'latin1');

export interface MemberRecord {
  id: string;
  /** http://host:port */
  api: string;
  /** hex SHA-256 of the member's admin token. */
  tokenHash: string;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** The server's admin token, created (mode 0600) on first start. */
export function ensureAdminToken(dataDir: string): string {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    const t = readFileSync(path, 'utf8').trim();
    if (t) {
      chmodSync(path, 0o600);
      return t;
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = randomBytes(32).toString('base64url');
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: 'w' });
  chmodSync(path, 0o600);
  return token;
}

export class MemberDirectory implements StateMachine {
  private readonly records = new Map<string, MemberRecord>();

  constructor(private readonly store: ObjectStore) {}

  /** The log entry announcing a member's record. */
  static entry(r: MemberRecord): Uint8Array {
    return Buffer.concat([ENTRY_MAGIC, Buffer.from(JSON.stringify(r), 'utf8')]);
  }

  get(id: string): MemberRecord | undefined {
    return this.records.get(id);
  }

  all(): MemberRecord[] {
    return [...this.records.values()];
  }

  apply(entry: { index: number; term: number; data: Uint8Array }): unknown {
    const d = entry.data;
    if (d.length >= ENTRY_MAGIC.length && Buffer.from(d.buffer, d.byteOffset, ENTRY_MAGIC.length).equals(ENTRY_MAGIC)) {
      try {
        const r = JSON.parse(Buffer.from(d.buffer, d.byteOffset + ENTRY_MAGIC.length, d.length - ENTRY_MAGIC.length).toString('utf8')) as MemberRecord;
        if (typeof r.id === 'string' && typeof r.api === 'string' && typeof r.tokenHash === 'string') {
          this.records.set(r.id, { id: r.id, api: r.api, tokenHash: r.tokenHash });
        }
      } catch {
        /* a malformed record: every member skips it alike */
      }
      return { ok: true, object: { json: '', rv: 0, uid: '' } };
    }
    return this.store.apply(entry);
  }

  snapshot(): Uint8Array {
    return Buffer.concat(this.snapshotParts());
  }

  /** The store's parts, then the directory as a trailer (no copy of the store's bytes). */
  snapshotParts(): Uint8Array[] {
    const dir = Buffer.from(JSON.stringify(this.all()), 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(dir.length);
    return [...this.store.snapshotParts(), dir, len, SNAPSHOT_MAGIC];
  }

  restore(data: Uint8Array, index: number): void {
    const b = Buffer.from(data.buffer, data.byteOffset, data.length);
    this.records.clear();
    if (b.length >= SNAPSHOT_MAGIC.length + 4 && b.subarray(b.length - SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
      const lenAt = b.length - SNAPSHOT_MAGIC.length - 4;
      const n = b.readUInt32BE(lenAt);
      const dirAt = lenAt - n;
      for (const r of JSON.parse(b.subarray(dirAt, lenAt).toString('utf8')) as MemberRecord[]) this.records.set(r.id, r);
      this.store.restore(b.subarray(0, dirAt), index);
      return;
    }
    // A snapshot from before the directory existed: members announce themselves again.
    this.store.restore(data, index);
  }
}

/** Whether `presented` is `own` or the token of one of `members` (constant time per comparison). */
export function tokenAccepted(presented: string | undefined, own: string, members: MemberRecord[]): boolean {
  if (!presented) return false;
  const h = Buffer.from(hashToken(presented), 'hex');
  const candidates = [hashToken(own), ...members.map((m) => m.tokenHash)];
  return candidates.some((c) => {
    const cb = Buffer.from(c, 'hex');
    return cb.length === h.length && timingSafeEqual(cb, h);
  });
}

/** 127.0.0.0/8 or ::1 (also IPv4-mapped). */
export function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  const a = addr.replace(/^::ffff:/i, '');
  return a === '::1' || /^127\.\d+\.\d+\.\d+$/.test(a);
}
