// Secrets encrypted at rest, under the keys of Kubernetes' EncryptionConfiguration
// (`--encryption-provider-config FILE`, read by api/encryption-config.ts).
//
// Where sealing happens: in the Registry, before a write is proposed. The
// Raft entry then already holds the sealed value, so the log, the snapshots
// (made from the store), the store itself and the replicated outbox never
// hold a Secret's data in plaintext; the state machine stores what it got
// and needs no key. Sealing at apply time instead would put the plaintext in
// the Raft log of every member. Reads (GET, LIST, WATCH) open the sealed
// value on the way out (Registry.reveal).
//
// Only a Secret's `data` (and `stringData`, should it reach the store) is
// sealed: the store decides on metadata (uid, labels, finalizers,
// resourceVersion), which therefore stays readable, as the etcd key does in
// Kubernetes. The sealed value replaces `data` by a string
//   "k8s:enc:aesgcm:v1:<key name>:<base64(nonce[12] | ciphertext | tag[16])>"
// (Kubernetes' prefix). The additional authenticated data is the object's
// storage key, so a sealed value moved to another Secret does not open.
// Validation refuses a `data` that is not a map, so no client can write a
// value that looks sealed.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { type AesGcmKey, type EncryptionProvider, parseEncryptionConfig, readEncryptionConfig } from '../api/encryption-config.ts';

const PREFIX = 'k8s:enc:aesgcm:v1:';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** The fields of a Secret that are sealed. */
const SEALED_FIELDS = ['data', 'stringData'] as const;
/** Store resource key of Secrets (resourceKey('', 'secrets')). */
export const SECRETS_RES = '/secrets';

/** A sealed value that does not open: wrong key, a key not configured, or tampered with. */
export class SealError extends Error {}

type SecretLike = { metadata?: { namespace?: string; name?: string }; data?: unknown; stringData?: unknown };

export class SecretSealer {
  /** Every key that reads, by name. */
  private readonly keys = new Map<string, Buffer>();
  private readonly identityReads: boolean;

  /** Providers in order: the first one writes, all of them read. No providers: identity (plaintext). */
  constructor(private readonly providers: EncryptionProvider[] = [{ type: 'identity' }]) {
    for (const p of providers) if (p.type === 'aesgcm') for (const k of p.keys) this.keys.set(k.name, k.key);
    this.identityReads = providers.some((p) => p.type === 'identity');
  }

  /** Reads and checks an EncryptionConfiguration file; throws a clear error for anything malformed. */
  static fromFile(path: string): SecretSealer {
    return new SecretSealer(readEncryptionConfig(path));
  }

  static parse(text: string): SecretSealer {
    return new SecretSealer(parseEncryptionConfig(text));
  }

  /** What writes: the first key of the first provider, or "identity". */
  get writeKey(): string {
    const p = this.providers[0];
    return p.type === 'aesgcm' ? p.keys[0].name : 'identity';
  }

  /**
   * The object to store for a Secret (JSON text): `data` sealed under the
   * write key. `prevStored`, the stored version being replaced, is reused
   * when it already holds the same data under the same key, so that a write
   * that changes nothing stays a no-op (no new resourceVersion; the store
   * compares the stored text) while a write after a key change re-encrypts.
   */
  seal(obj: SecretLike, prevStored?: string): string {
    const secret = sensitive(obj);
    const p = this.providers[0];
    if (!secret || p.type === 'identity') return JSON.stringify(obj);
    const { namespace = '', name = '' } = obj.metadata ?? {};
    const plain = canonical(secret);
    let sealed: string | undefined;
    if (prevStored !== undefined) {
      const prev = JSON.parse(prevStored) as SecretLike;
      if (typeof prev.data === 'string' && prev.data.startsWith(`${PREFIX}${p.keys[0].name}:`)) {
        try {
          if (canonical(this.openValue(prev.data, namespace, name)) === plain) sealed = prev.data;
        } catch {
          /* does not open: seal afresh */
        }
      }
    }
    sealed ??= this.sealValue(plain, p.keys[0], namespace, name);
    const out: Record<string, unknown> = { ...(obj as Record<string, unknown>) };
    for (const f of SEALED_FIELDS) delete out[f];
    out.data = sealed;
    return JSON.stringify(out);
  }

  /** The plaintext JSON of a stored Secret. Throws SealError when its data does not open. */
  open(storedJson: string): string {
    const obj = JSON.parse(storedJson) as SecretLike;
    if (typeof obj.data !== 'string') {
      // Stored in plaintext: readable only where identity is a provider (as in Kubernetes).
      if (!sensitive(obj) || this.identityReads) return storedJson;
      throw new SealError('stored unencrypted, and the encryption configuration has no identity provider to read it');
    }
    const { namespace = '', name = '' } = obj.metadata ?? {};
    const fields = this.openValue(obj.data, namespace, name);
    const out: Record<string, unknown> = { ...(obj as Record<string, unknown>) };
    delete out.data;
    Object.assign(out, fields);
    return JSON.stringify(out);
  }

  /** The name of the key a stored Secret's data is sealed under ("identity" when it is not sealed). */
  static keyOf(storedJson: string): string {
    const d = (JSON.parse(storedJson) as SecretLike).data;
    if (typeof d !== 'string' || !d.startsWith(PREFIX)) return 'identity';
    return d.slice(PREFIX.length, d.indexOf(':', PREFIX.length));
  }

  private sealValue(plain: string, k: AesGcmKey, ns: string, name: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const c = createCipheriv(`aes-${k.key.length * 8}-gcm` as 'aes-256-gcm', k.key, nonce, { authTagLength: TAG_BYTES });
    c.setAAD(aad(ns, name));
    const body = Buffer.concat([c.update(plain, 'utf8'), c.final()]);
    return `${PREFIX}${k.name}:${Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64')}`;
  }

  private openValue(sealed: string, ns: string, name: string): Record<string, unknown> {
    if (!sealed.startsWith(PREFIX)) throw new SealError('the stored data is neither a map nor a sealed value');
    const colon = sealed.indexOf(':', PREFIX.length);
    if (colon < 0) throw new SealError('the sealed value names no key');
    const keyName = sealed.slice(PREFIX.length, colon);
    const key = this.keys.get(keyName);
    if (!key) throw new SealError(`sealed under key ${JSON.stringify(keyName)}, which the encryption configuration does not have`);
    const raw = Buffer.from(sealed.slice(colon + 1), 'base64');
    if (raw.length < NONCE_BYTES + TAG_BYTES) throw new SealError(`the value sealed under key ${JSON.stringify(keyName)} is truncated`);
    try {
      const d = createDecipheriv(`aes-${key.length * 8}-gcm` as 'aes-256-gcm', key, raw.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
      d.setAAD(aad(ns, name));
      d.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
      const plain = Buffer.concat([d.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), d.final()]).toString('utf8');
      return JSON.parse(plain) as Record<string, unknown>;
    } catch {
      throw new SealError(`the value sealed under key ${JSON.stringify(keyName)} failed authentication (tampered with, or another key of that name)`);
    }
  }
}

/**
 * A Secret's JSON as the event stream carries it: metadata only, no
 * `data`/`stringData` (the audit policy's Metadata level). Consumers that
 * need the values read them through the API.
 */
export function secretMetadataOnly(json: string): string {
  const obj = JSON.parse(json) as Record<string, unknown>;
  for (const f of SEALED_FIELDS) delete obj[f];
  return JSON.stringify(obj);
}

/** The sealed fields of a Secret, or undefined when it has none. */
function sensitive(obj: SecretLike): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {};
  for (const f of SEALED_FIELDS) if (obj[f] !== undefined) out[f] = obj[f];
  return Object.keys(out).length ? out : undefined;
}

/** JSON with map keys sorted, so equal data compares equal whatever the key order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (x && typeof x === 'object' && !Array.isArray(x)
    ? Object.fromEntries(Object.keys(x as object).sort().map((k) => [k, (x as Record<string, unknown>)[k]]))
    : x));
}

/** Binds a sealed value to its object (Kubernetes uses the etcd key the same way). */
function aad(ns: string, name: string): Buffer {
  return Buffer.from(`/registry/secrets/${ns}/${name}`);
}
