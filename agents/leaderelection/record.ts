// The pure parts of leader election: the election record a Lease's spec
// holds, MicroTime formatting, and the judgement of whether another holder's
// lease has expired.
//
// That judgement never compares clocks. Like client-go, a candidate trusts
// only its own monotonic clock: it notes *when it saw the record change*, and
// the lease has expired once leaseDurationSeconds have passed on that clock
// without another change. renewTime is only a value that changes on every
// renewal; its content is never read as a time, so clock skew between hosts
// does not matter (only a difference in clock *rate* would, which the margin
// leaseDuration - renewDeadline absorbs).

/** The fields of a coordination.k8s.io/v1 LeaseSpec that leader election reads and writes. */
export interface LeaderElectionRecord {
  /** '' when nobody holds the lease (never acquired, or released). */
  holderIdentity: string;
  leaseDurationSeconds: number;
  /** MicroTime strings, as the server returned them (or as we wrote them). */
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions: number;
}

/** A Lease as the API returns it (only what leader election needs). */
export interface LeaseObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
    [k: string]: unknown;
  };
  [k: string]: unknown;
}

/** The record a Lease's spec holds (missing fields read as client-go reads nil pointers: '' and 0). */
export function recordFromLease(lease: Pick<LeaseObject, 'spec'>): LeaderElectionRecord {
  const s = lease.spec ?? {};
  const r: LeaderElectionRecord = {
    holderIdentity: typeof s.holderIdentity === 'string' ? s.holderIdentity : '',
    leaseDurationSeconds: typeof s.leaseDurationSeconds === 'number' ? s.leaseDurationSeconds : 0,
    leaseTransitions: typeof s.leaseTransitions === 'number' ? s.leaseTransitions : 0,
  };
  if (typeof s.acquireTime === 'string') r.acquireTime = s.acquireTime;
  if (typeof s.renewTime === 'string') r.renewTime = s.renewTime;
  return r;
}

/**
 * The Lease with its spec replaced by `record` (other spec fields such as
 * strategy and preferredHolder, and all metadata including resourceVersion,
 * are kept, so the update is conditional on the version that was read).
 */
export function leaseWithRecord<T extends LeaseObject>(lease: T, record: LeaderElectionRecord): T {
  return { ...lease, spec: { ...(lease.spec ?? {}), ...specOf(record) } };
}

/** The LeaseSpec fields of a record. */
export function specOf(r: LeaderElectionRecord): NonNullable<LeaseObject['spec']> {
  const spec: NonNullable<LeaseObject['spec']> = {
    holderIdentity: r.holderIdentity,
    leaseDurationSeconds: r.leaseDurationSeconds,
    leaseTransitions: r.leaseTransitions,
  };
  if (r.acquireTime !== undefined) spec.acquireTime = r.acquireTime;
  if (r.renewTime !== undefined) spec.renewTime = r.renewTime;
  return spec;
}

/** A canonical string of a record: two reads of an unchanged lease give the same string (client-go's raw record). */
export function recordKey(r: LeaderElectionRecord): string {
  return JSON.stringify([r.holderIdentity, r.leaseDurationSeconds, r.acquireTime ?? null, r.renewTime ?? null, r.leaseTransitions]);
}

/**
 * metav1.MicroTime of an epoch time in milliseconds (fractions of a
 * millisecond give the last three digits): RFC 3339 in UTC with exactly six
 * fractional digits, "2026-12-04T20:39:42.123456Z".
 */
export function formatMicroTime(epochMs: number): string {
  if (!Number.isFinite(epochMs)) throw new RangeError(`not a time: ${epochMs}`);
  const micros = Math.floor(epochMs * 1000);
  const ms = Math.floor(micros / 1000);
  const sub = micros - ms * 1000;
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, -1)}${String(sub).padStart(3, '0')}Z`;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i;

/** Epoch milliseconds (with microsecond fractions) of an RFC 3339 time; NaN when it is not one. */
export function parseMicroTime(s: string): number {
  const m = RFC3339.exec(s);
  if (!m) return Number.NaN;
  const whole = Date.parse(`${m[1]}${m[3]!.toUpperCase()}`);
  if (Number.isNaN(whole)) return Number.NaN;
  const frac = m[2] ? Number(`0.${m[2]}`) * 1000 : 0;
  return whole + Math.floor(frac * 1000) / 1000;
}

/**
 * What a candidate knows of the lease: the record it last saw and when, on
 * its own monotonic clock, that record last *changed*.
 */
export class LeaseObservation {
  record?: LeaderElectionRecord;
  private key?: string;
  /** Local (monotonic) time the record was last seen to change; -Infinity before any. */
  at = Number.NEGATIVE_INFINITY;

  /**
   * A record read from the server at local time `now`: the observation time
   * moves only when the record differs from the last one seen. Returns
   * whether it changed.
   */
  observe(record: LeaderElectionRecord, now: number): boolean {
    const key = recordKey(record);
    if (key === this.key) return false;
    this.record = record;
    this.key = key;
    this.at = now;
    return true;
  }

  /** Forgets what was seen (the lease was found missing). */
  reset(): void {
    this.record = undefined;
    this.key = undefined;
    this.at = Number.NEGATIVE_INFINITY;
  }

  /** The holder last seen ('' for none). */
  get holder(): string {
    return this.record?.holderIdentity ?? '';
  }

  /**
   * Whether the observed lease is still valid at local time `now`: less than
   * its leaseDurationSeconds have passed since it last changed. A record with
   * no duration is never valid.
   */
  validAt(now: number): boolean {
    if (!this.record) return false;
    return this.at + this.record.leaseDurationSeconds * 1000 > now;
  }

  /** Local time at which the observed lease expires (NaN when none is observed). */
  expiresAt(): number {
    if (!this.record) return Number.NaN;
    return this.at + this.record.leaseDurationSeconds * 1000;
  }

  /** Whether someone other than `identity` holds a lease that has not expired at `now` (so `identity` must back off). */
  heldByOther(identity: string, now: number): boolean {
    const h = this.holder;
    return h !== '' && h !== identity && this.validAt(now);
  }
}
