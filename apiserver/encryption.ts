// Secrets encrypted at rest (Kubernetes' EncryptionConfiguration,
// apiserver.config.k8s.io/v1, `--encryption-provider-config FILE`).
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
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import YAML from 'yaml';

const PREFIX = 'k8s:enc:aesgcm:v1:';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** The fields of a Secret that are sealed. */
const SEALED_FIELDS = ['data', 'stringData'] as const;
/** Store resource key of Secrets (resourceKey('', 'secrets')). */
export const SECRETS_RES = '/secrets';

interface AesKey { name: string; key: Buffer }
type Provider = { type: 'aesgcm'; keys: AesKey[] } | { type: 'identity' };

/** A sealed value that does not open: wrong key, a key not configured, or tampered with. */
export class SealError extends Error {}

type SecretLike = { metadata?: { namespace?: string; name?: string }; data?: unknown; stringData?: unknown };

export class SecretSealer {
  /** Every key that reads, by name. */
  private readonly keys = new Map<string, Buffer>();
  private readonly identityReads: boolean;

  /** Providers in order: the first one writes, all of them read. No providers: identity (plaintext). */
  constructor(private readonly providers: Provider[] = [{ type: 'identity' }]) {
    for (const p of providers) if (p.type === 'aesgcm') for (const k of p.keys) this.keys.set(k.name, k.key);
    this.identityReads = providers.some((p) => p.type === 'identity');
  }

  /** Reads and checks an EncryptionConfiguration file; throws a clear error for anything malformed. */
  static fromFile(path: string): SecretSealer {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new Error(`--encryption-provider-config: cannot read ${path}: ${(e as Error).message}`);
    }
    try {
      return SecretSealer.parse(text);
    } catch (e) {
      throw new Error(`--encryption-provider-config ${path}: ${(e as Error).message}`);
    }
  }

  static parse(text: string): SecretSealer {
    let doc: unknown;
    try {
      doc = YAML.parse(text);
    } catch (e) {
      throw new Error(`not valid YAML: ${(e as Error).message}`);
    }
    const cfg = doc as { apiVersion?: unknown; kind?: unknown; resources?: unknown };
    if (!cfg || typeof cfg !== 'object') throw new Error('expected an EncryptionConfiguration object');
    if (cfg.kind !== 'EncryptionConfiguration') throw new Error(`kind must be EncryptionConfiguration (got ${JSON.stringify(cfg.kind)})`);
    if (cfg.apiVersion !== 'apiserver.config.k8s.io/v1') throw new Error(`apiVersion must be apiserver.config.k8s.io/v1 (got ${JSON.stringify(cfg.apiVersion)})`);
    if (!Array.isArray(cfg.resources) || !cfg.resources.length) throw new Error('resources: expected a non-empty list');
    let providers: Provider[] | undefined;
    cfg.resources.forEach((r: unknown, i: number) => {
      const at = `resources[${i}]`;
      const rr = r as { resources?: unknown; providers?: unknown };
      if (!rr || typeof rr !== 'object' || !Array.isArray(rr.resources) || !rr.resources.length) throw new Error(`${at}.resources: expected a non-empty list`);
      for (const name of rr.resources) {
        if (name !== 'secrets') throw new Error(`${at}.resources: only "secrets" can be encrypted here (got ${JSON.stringify(name)})`);
      }
      if (providers) throw new Error(`${at}: "secrets" is configured more than once`);
      if (!Array.isArray(rr.providers) || !rr.providers.length) throw new Error(`${at}.providers: expected a non-empty list`);
      providers = rr.providers.map((p: unknown, j: number) => parseProvider(p, `${at}.providers[${j}]`));
    });
    const names = new Set<string>();
    for (const p of providers!) {
      if (p.type !== 'aesgcm') continue;
      for (const k of p.keys) {
        if (names.has(k.name)) throw new Error(`key name ${JSON.stringify(k.name)} is used more than once`);
        names.add(k.name);
      }
    }
    return new SecretSealer(providers!);
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

  private sealValue(plain: string, k: AesKey, ns: string, name: string): string {
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

/** A new AES-256 key for an EncryptionConfiguration (base64, as its `secret` field holds it). */
export function newKeySecret(): string {
  return randomBytes(32).toString('base64');
}

/** An EncryptionConfiguration for Secrets: aesgcm with these keys (the first writes), then identity (reads what was stored before encryption). */
export function encryptionConfigYaml(keys: { name: string; secret: string }[]): string {
  return YAML.stringify({
    apiVersion: 'apiserver.config.k8s.io/v1',
    kind: 'EncryptionConfiguration',
    resources: [{ resources: ['secrets'], providers: [{ aesgcm: { keys } }, { identity: {} }] }],
  });
}

/**
 * Creates the key file at `path` (readable by its owner only) unless it
 * exists: `flotilla up` makes it once per cluster directory and every server
 * reads the same one. Returns whether it was created.
 */
export function ensureEncryptionConfig(path: string): boolean {
  if (existsSync(path)) return false;
  writeFileSync(path, encryptionConfigYaml([{ name: 'key1', secret: newKeySecret() }]), { mode: 0o600, flag: 'wx' });
  return true;
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

function parseProvider(p: unknown, at: string): Provider {
  if (!p || typeof p !== 'object' || Array.isArray(p)) throw new Error(`${at}: expected a provider object`);
  const entries = Object.entries(p as Record<string, unknown>);
  if (entries.length !== 1) throw new Error(`${at}: a provider names exactly one type (aesgcm or identity), got ${entries.length ? entries.map(([k]) => k).join(', ') : 'none'}`);
  const [type, body] = entries[0];
  if (type === 'identity') return { type: 'identity' };
  if (type !== 'aesgcm') throw new Error(`${at}: provider type ${JSON.stringify(type)} is not supported (aesgcm or identity)`);
  const keys = (body as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || !keys.length) throw new Error(`${at}.aesgcm.keys: expected a non-empty list`);
  return {
    type: 'aesgcm',
    keys: keys.map((k: unknown, i: number) => {
      const kk = k as { name?: unknown; secret?: unknown };
      const kat = `${at}.aesgcm.keys[${i}]`;
      if (!kk || typeof kk.name !== 'string' || !/^[A-Za-z0-9._-]+$/.test(kk.name)) throw new Error(`${kat}.name: expected a name of letters, digits, '.', '_' or '-'`);
      if (typeof kk.secret !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(kk.secret)) throw new Error(`${kat}.secret: expected base64`);
      const key = Buffer.from(kk.secret, 'base64');
      if (![16, 24, 32].includes(key.length)) throw new Error(`${kat}.secret: an AES key is 16, 24 or 32 bytes, got ${key.length}`);
      return { name: kk.name, key };
    }),
  };
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
