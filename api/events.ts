// The audit/event record published for every committed write: encoding per
// proto/events.proto and the subject it is published on.
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

export const STREAM = 'EVENTS';
export const SUBJECT_PREFIX = 'events';
/** Header: the Raft index of the event stored just before this one (consumers detect removed messages with it). */
export const PREV_INDEX_HEADER = 'Flotilla-Prev-Index';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface ApiEvent {
  index: number;
  term: number;
  type: EventType;
  group: string;
  version: string;
  kind: string;
  resource: string;
  namespace: string;
  name: string;
  uid: string;
  /** The object as JSON text. */
  object: string;
  user: string;
  verb: string;
  timestamp: string;
  /** The requester's groups, source addresses and user agent (decoded as [] and '' when unknown; optional to write). */
  groups?: string[];
  sourceIPs?: string[];
  userAgent?: string;
}

const root = protobuf.loadSync(fileURLToPath(new URL('../proto/events.proto', import.meta.url)));
const EventT = root.lookupType('flotilla.events.Event');
const TYPES: EventType[] = ['ADDED', 'MODIFIED', 'DELETED'];

export class EventDecodeError extends Error {}

export function encodeEvent(e: ApiEvent): Uint8Array {
  const { sourceIPs, ...rest } = e;
  return EventT.encode({ ...rest, sourceIps: sourceIPs ?? [], type: TYPES.indexOf(e.type), object: Buffer.from(e.object) }).finish();
}

export function decodeEvent(b: Uint8Array): ApiEvent {
  let m: Record<string, unknown>;
  try {
    m = EventT.decode(b) as unknown as Record<string, unknown>;
  } catch (e) {
    throw new EventDecodeError(`not an Event: ${(e as Error).message}`);
  }
  const num = (v: unknown) => (typeof v === 'number' ? v : v && typeof v === 'object' ? Number(String(v)) : 0);
  const type = TYPES[num(m.type)];
  if (!type) throw new EventDecodeError(`unknown event type ${String(m.type)}`);
  const index = num(m.index);
  if (!index) throw new EventDecodeError('event without an index');
  return {
    index, term: num(m.term), type,
    group: String(m.group ?? ''), version: String(m.version ?? ''), kind: String(m.kind ?? ''), resource: String(m.resource ?? ''),
    namespace: String(m.namespace ?? ''), name: String(m.name ?? ''), uid: String(m.uid ?? ''),
    object: Buffer.from((m.object as Uint8Array) ?? new Uint8Array()).toString('utf8'),
    user: String(m.user ?? ''), verb: String(m.verb ?? ''), timestamp: String(m.timestamp ?? ''),
    groups: strings(m.groups), sourceIPs: strings(m.sourceIps), userAgent: String(m.userAgent ?? ''),
  };
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [];
}

/**
 * A subject token for a namespace or name. Subjects split on '.', and '*'
 * and '>' are wildcards, so those characters (legal in DNS subdomain names)
 * are percent-encoded, as is '%' itself.
 */
export function subjectToken(s: string): string {
  return s.replace(/[%.*>\s]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

export function decodeSubjectToken(s: string): string {
  return s.replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** events.<group or core>.<plural>.<namespace or _cluster>.<name> */
export function subjectFor(group: string, resource: string, namespace: string, name: string): string {
  return `${SUBJECT_PREFIX}.${group ? subjectToken(group) : 'core'}.${resource}.${namespace ? subjectToken(namespace) : '_cluster'}.${subjectToken(name)}`;
}

/** A filter subject for a kind (plural) and optional namespace. */
export function filterSubject(group: string | undefined, resource: string | undefined, namespace: string | undefined): string {
  const g = group === undefined ? '*' : group ? subjectToken(group) : 'core';
  return `${SUBJECT_PREFIX}.${g}.${resource ?? '*'}.${namespace === undefined ? '*' : namespace ? subjectToken(namespace) : '_cluster'}.*`;
}

/** The header carrying the event's Raft index (JetStream's deduplication id). */
export const MSG_ID_HEADER = 'Nats-Msg-Id';

/** A message as stored or delivered: JsMsg and StoredMsg both fit. */
export interface EventMessage {
  subject: string;
  data: Uint8Array;
  /** JsMsg's name. */
  headers?: { get(k: string): string };
  /** StoredMsg's name. */
  header?: { get(k: string): string };
}

export type EventCheck =
  | { ok: true; event: ApiEvent; index: number; prev: number }
  | { ok: false; reason: string };

/** A non-negative integer header value, else undefined. */
function intHeader(v: string | undefined): number | undefined {
  if (!v || !/^(0|[1-9]\d*)$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Whether a message on the stream is a Flotilla event as the publisher writes
 * it: the payload decodes as proto/events.proto's Event, Nats-Msg-Id is its
 * index, the subject is the one of its kind, namespace and name, and
 * Flotilla-Prev-Index names an earlier index. Only such messages may move a
 * reader's or the publisher's position: anyone can publish to events.>, and a
 * stray numeric Nats-Msg-Id must not make a reader skip events it never read.
 */
export function checkEventMessage(m: EventMessage): EventCheck {
  const h = m.headers ?? m.header;
  const rawId = h?.get(MSG_ID_HEADER) || '';
  const id = intHeader(rawId);
  if (!id) return { ok: false, reason: `Nats-Msg-Id "${rawId}" is not a Raft index` };
  let event: ApiEvent;
  try {
    event = decodeEvent(m.data);
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  if (event.index !== id) return { ok: false, reason: `Nats-Msg-Id ${id} does not match the event's index ${event.index}` };
  const want = subjectFor(event.group, event.resource, event.namespace, event.name);
  if (m.subject !== want) return { ok: false, reason: `subject ${m.subject} is not the event's (${want})` };
  const rawPrev = h?.get(PREV_INDEX_HEADER) || '';
  const prev = intHeader(rawPrev);
  if (prev === undefined) return { ok: false, reason: `${PREV_INDEX_HEADER} "${rawPrev}" is missing or not an index` };
  if (prev >= id) return { ok: false, reason: `${PREV_INDEX_HEADER} ${prev} is not before the event's index ${id}` };
  return { ok: true, event, index: id, prev };
}
