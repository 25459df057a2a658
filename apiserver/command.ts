// The write commands the API server proposes to Raft. Each is decided at
// apply time from the log alone (AlreadyExists, NotFound, Conflict), so every
// member reaches the same decision. Encoded with msgpackr: opaque payloads
// inside the Raft entry envelope of proto/raft.proto.
import { pack, unpack } from 'msgpackr';
import type { GcRequest } from './deletion.ts';
import type { ServiceRanges } from './service-allocation.ts';

/** What the user asked for, recorded for the audit stream. */
export type AuditVerb =
  | 'create' | 'update' | 'patch' | 'apply' | 'delete' | 'deletecollection'
  | 'update-status' | 'patch-status' | 'bind' | 'scale' | 'system';

export interface Precondition {
  /** The object's resourceVersion must equal this. */
  rv?: number;
  uid?: string;
}

interface CommandBase {
  /** Resource key: "<group>/<plural>", group '' for core ("/pods", "apps/deployments"). */
  res: string;
  ns: string;
  name: string;
  user: string;
  verb: AuditVerb;
  /**
   * The rest of the requester's identity, for the audit record on the event
   * stream (see RequestAudit). Optional: entries written before these fields
   * existed decode without them, which reads as "unknown".
   */
  groups?: string[];
  /** Source addresses (X-Forwarded-For entries, then the connection's peer), as Kubernetes' audit sourceIPs. */
  src?: string[];
  /** The User-Agent header (capped, see auditOf). */
  ua?: string;
  /** Proposer's wall clock (RFC 3339, seconds): creation and deletion timestamps come from it. */
  ts: string;
}

export interface CreateCommand extends CommandBase {
  op: 'create';
  /** The complete object (validated, defaulted, uid and creationTimestamp set) as JSON. */
  obj: string;
  /** For a Service: the proposer's ranges to allocate its cluster IP and node ports from (apply time). */
  svc?: ServiceRanges;
}

export interface UpdateCommand extends CommandBase {
  op: 'update';
  /** The complete new object as JSON. */
  obj: string;
  pre: Precondition;
  /** As for create. */
  svc?: ServiceRanges;
}

export interface DeleteCommand extends CommandBase {
  op: 'delete';
  pre: Precondition;
  /** Seconds until a graceful delete completes; 0 = now. Objects with finalizers are only marked. */
  grace: number;
  /** Remove even if graceful (the node agent's final delete). */
  force?: boolean;
  /** The propagation asked for: decides the orphan/foregroundDeletion finalizers at apply time. */
  gc?: GcRequest;
}

/**
 * The event publisher's watermark: every event up to `published` is on the
 * NATS stream. Replicated so that every member (and every snapshot) keeps the
 * events still to publish, whoever leads next.
 */
export interface MarkCommand extends CommandBase {
  op: 'mark';
  published: number;
}

/** Who made a request, beyond the user name: carried in write commands so every member publishes the same event. */
export interface RequestAudit {
  groups: string[];
  sourceIPs: string[];
  userAgent: string;
}

/** The command fields for a request's audit identity (nothing when unknown, as for the server's own writes). */
export function auditFields(a: RequestAudit | undefined): Pick<CommandBase, 'groups' | 'src' | 'ua'> {
  if (!a) return {};
  return { groups: a.groups, src: a.sourceIPs, ua: a.userAgent };
}

export type Command = CreateCommand | UpdateCommand | DeleteCommand | MarkCommand;

export function encodeCommand(c: Command): Uint8Array {
  return pack(c);
}

export function decodeCommand(b: Uint8Array): Command {
  const c = unpack(b) as Command;
  if (!c || typeof c !== 'object' || typeof c.res !== 'string' || !['create', 'update', 'delete', 'mark'].includes(c.op)) {
    throw new Error('not an API command');
  }
  return c;
}

export function resourceKey(group: string, plural: string): string {
  return `${group}/${plural}`;
}
