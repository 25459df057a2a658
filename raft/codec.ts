// Binary codec for everything Raft puts on the wire or on disk, defined by
// proto/raft.proto. The .proto is the single source of truth for the format;
// this module only maps protobufjs' reflected types onto raft/types.ts.
//
// Hot path: every message sent or received and every entry persisted goes
// through here, so the Type objects (and the encoders/decoders protobufjs
// generates for them) are looked up once at module load, encoding hands the
// TS objects to protobufjs as they are (field names match), and decoding
// converts by hand instead of via toObject().
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import {
  ConfChangeType, EMPTY, EntryType, MessageType,
  type ConfChange, type ConfState, type Entry, type HardState, type Message, type SnapshotMetadata,
} from './types.ts';

/** Thrown for bytes that are not a valid encoding of the expected record. */
export class CodecError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CodecError';
  }
}

/** The envelope around proposed data (see `Proposal` in raft.proto). */
export interface Proposal {
  origin: string;
  seq: number;
  payload: Uint8Array;
}

export const PROTO_PATH = fileURLToPath(new URL('../proto/raft.proto', import.meta.url));

const root = protobuf.loadSync(PROTO_PATH);
const EntryT = root.lookupType('flotilla.raft.Entry');
const MessageT = root.lookupType('flotilla.raft.Message');
const ConfChangeT = root.lookupType('flotilla.raft.ConfChange');
const HardStateT = root.lookupType('flotilla.raft.HardState');
const ProposalT = root.lookupType('flotilla.raft.Proposal');

// The proto enums must mirror the TS enums number for number: a drift would
// silently turn e.g. a Vote into a VoteResp between two builds. Checked once
// at load, so a bad edit fails every test instead of corrupting a cluster.
checkEnum('flotilla.raft.MessageType', 'MSG_', MessageType);
checkEnum('flotilla.raft.EntryType', 'ENTRY_', EntryType);
checkEnum('flotilla.raft.ConfChangeType', 'CONF_CHANGE_', ConfChangeType);

function checkEnum(protoName: string, prefix: string, tsEnum: Record<string, string | number>): void {
  const protoValues = root.lookupEnum(protoName).values;
  const tsValues: Record<string, number> = {};
  for (const [name, value] of Object.entries(tsEnum)) {
    if (typeof value !== 'number') continue; // skip the reverse mapping
    // AppResp -> MSG_APP_RESP
    tsValues[prefix + name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()] = value;
  }
  const a = JSON.stringify(Object.entries(protoValues).sort());
  const b = JSON.stringify(Object.entries(tsValues).sort());
  if (a !== b) throw new Error(`${PROTO_PATH}: enum ${protoName} ${a} does not match raft/types.ts ${b}`);
}

// ---- conversions ----------------------------------------------------------

/** protobufjs yields uint64 as a Long when the `long` package is present, else a number. */
interface LongLike { toNumber(): number }

function num(v: number | LongLike | null | undefined): number {
  if (typeof v === 'number') return v;
  if (v == null) return 0;
  const n = v.toNumber();
  // Indexes/terms/offsets never get near 2^53; a bigger one is garbage that
  // happened to parse, and would otherwise be silently rounded.
  if (n > Number.MAX_SAFE_INTEGER) throw new CodecError(`integer ${n} out of range`);
  return n;
}

/**
 * Decoded `bytes` are views into the input buffer. Copy them so that a small
 * entry kept in the in-memory log does not pin a whole 64 KiB socket chunk,
 * and so callers may reuse their input buffers.
 */
function copyBytes(b: Uint8Array | null | undefined): Uint8Array {
  if (b == null || b.length === 0) return EMPTY;
  const out = new Uint8Array(b.length);
  out.set(b);
  return out;
}

// Shapes of the decoded protobufjs message instances (absent fields read
// their defaults from the prototype).
interface PbEntry { term: number | LongLike; index: number | LongLike; type: number; data: Uint8Array }
interface PbConfState { voters: string[]; learners: string[] }
interface PbSnapshotMetadata { index: number | LongLike; term: number | LongLike; conf: PbConfState | null }
interface PbMessage {
  type: number; from: string; to: string; term: number | LongLike; logTerm: number | LongLike;
  index: number | LongLike; entries: PbEntry[]; commit: number | LongLike; reject: boolean;
  rejectHint: number | LongLike; context: Uint8Array; snapshot: PbSnapshotMetadata | null;
  snapOffset: number | LongLike; snapTotal: number | LongLike; snapData: Uint8Array; clusterId: string;
}

function entryFromPb(p: PbEntry): Entry {
  const type = p.type;
  if (type !== EntryType.Normal && type !== EntryType.ConfChange) {
    throw new CodecError(`unknown entry type ${type}`);
  }
  return { term: num(p.term), index: num(p.index), type, data: copyBytes(p.data) };
}

function confFromPb(p: PbConfState | null): ConfState {
  // Copy the arrays: protobufjs shares one frozen empty array as the default.
  return { voters: p ? p.voters.slice() : [], learners: p ? p.learners.slice() : [] };
}

function metaFromPb(p: PbSnapshotMetadata): SnapshotMetadata {
  return { index: num(p.index), term: num(p.term), conf: confFromPb(p.conf) };
}

function decodeWith<T>(type: protobuf.Type, b: Uint8Array, what: string): T {
  if (!(b instanceof Uint8Array)) throw new CodecError(`${what}: expected bytes, got ${typeof b}`);
  try {
    return type.decode(b) as unknown as T;
  } catch (e) {
    throw new CodecError(`malformed ${what} (${b.length} bytes): ${(e as Error).message}`, { cause: e });
  }
}

// ---- Message --------------------------------------------------------------

export function encodeMessage(m: Message): Uint8Array {
  // The TS Message has exactly the proto's (camelCased) field names, and
  // encode() skips proto3 defaults itself, so no conversion is needed.
  return MessageT.encode(m).finish();
}

/** Decodes a Message, filling every field; throws CodecError on garbage or an unknown type. */
export function decodeMessage(b: Uint8Array): Message {
  const p = decodeWith<PbMessage>(MessageT, b, 'raft message');
  try {
    const type = p.type;
    if (MessageType[type] === undefined) throw new CodecError(`unknown message type ${type}`);
    const pe = p.entries;
    const entries: Entry[] = new Array(pe.length);
    for (let i = 0; i < pe.length; i++) entries[i] = entryFromPb(pe[i]!);
    const m: Message = {
      type,
      from: p.from,
      to: p.to,
      term: num(p.term),
      logTerm: num(p.logTerm),
      index: num(p.index),
      entries,
      commit: num(p.commit),
      reject: p.reject,
      rejectHint: num(p.rejectHint),
      context: copyBytes(p.context),
      snapOffset: num(p.snapOffset),
      snapTotal: num(p.snapTotal),
      snapData: copyBytes(p.snapData),
    };
    if (p.snapshot) m.snapshot = metaFromPb(p.snapshot);
    if (p.clusterId) m.clusterId = p.clusterId;
    return m;
  } catch (e) {
    if (e instanceof CodecError) throw new CodecError(`malformed raft message (${b.length} bytes): ${e.message}`);
    throw e;
  }
}

// ---- Entry ----------------------------------------------------------------

export function encodeEntry(e: Entry): Uint8Array {
  return EntryT.encode(e).finish();
}

export function decodeEntry(b: Uint8Array): Entry {
  const p = decodeWith<PbEntry>(EntryT, b, 'raft entry');
  try {
    return entryFromPb(p);
  } catch (e) {
    if (e instanceof CodecError) throw new CodecError(`malformed raft entry (${b.length} bytes): ${e.message}`);
    throw e;
  }
}

// ---- ConfChange -----------------------------------------------------------

export function encodeConfChange(c: ConfChange): Uint8Array {
  return ConfChangeT.encode(c).finish();
}

export function decodeConfChange(b: Uint8Array): ConfChange {
  const p = decodeWith<{ type: number; nodeId: string; context: Uint8Array }>(ConfChangeT, b, 'conf change');
  if (ConfChangeType[p.type] === undefined) {
    throw new CodecError(`malformed conf change (${b.length} bytes): unknown type ${p.type}`);
  }
  return { type: p.type, nodeId: p.nodeId, context: copyBytes(p.context) };
}

// ---- Proposal -------------------------------------------------------------

export function encodeProposal(p: Proposal): Uint8Array {
  return ProposalT.encode(p).finish();
}

export function decodeProposal(b: Uint8Array): Proposal {
  const p = decodeWith<{ origin: string; seq: number | LongLike; payload: Uint8Array }>(ProposalT, b, 'proposal');
  try {
    return { origin: p.origin, seq: num(p.seq), payload: copyBytes(p.payload) };
  } catch (e) {
    if (e instanceof CodecError) throw new CodecError(`malformed proposal (${b.length} bytes): ${e.message}`);
    throw e;
  }
}

// ---- HardState ------------------------------------------------------------

export function encodeHardState(h: HardState): Uint8Array {
  return HardStateT.encode(h).finish();
}

export function decodeHardState(b: Uint8Array): HardState {
  const p = decodeWith<{ term: number | LongLike; vote: string; commit: number | LongLike; noVoteUntil: number | LongLike; noVoteTerm: number | LongLike }>(
    HardStateT, b, 'hard state');
  try {
    const hs: HardState = { term: num(p.term), vote: p.vote, commit: num(p.commit) };
    const nv = num(p.noVoteUntil);
    if (nv) {
      hs.noVoteUntil = nv;
      hs.noVoteTerm = num(p.noVoteTerm);
    }
    return hs;
  } catch (e) {
    if (e instanceof CodecError) throw new CodecError(`malformed hard state (${b.length} bytes): ${e.message}`);
    throw e;
  }
}
