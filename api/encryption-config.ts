// The key file of Secrets encrypted at rest: Kubernetes' EncryptionConfiguration
// (apiserver.config.k8s.io/v1), as `flotilla server --encryption-provider-config`
// reads it and `flotilla up` writes it. Only what Flotilla implements is
// accepted (the resource "secrets"; the providers aesgcm and identity), and
// anything else is refused with the reason, so a server never starts with
// keys it misread. The sealing itself is the server's (apiserver/encryption.ts).
//
//   apiVersion: apiserver.config.k8s.io/v1
//   kind: EncryptionConfiguration
//   resources:
//     - resources: [secrets]
//       providers:               # the first writes, all read
//         - aesgcm:
//             keys:              # the first key writes, all read
//               - {name: key1, secret: <base64 of 16, 24 or 32 bytes>}
//         - identity: {}         # reads what was stored before encryption
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseFlagFile } from './flag-file.ts';
import YAML from 'yaml';

export interface AesGcmKey { name: string; key: Buffer }
export type EncryptionProvider = { type: 'aesgcm'; keys: AesGcmKey[] } | { type: 'identity' };

/** Reads and checks a key file; the error names the flag, the file and what is wrong. */
export function readEncryptionConfig(path: string): EncryptionProvider[] {
  return parseFlagFile(path, '--encryption-provider-config', parseEncryptionConfig);
}

/** The providers for Secrets, in order; throws for anything malformed or not supported. */
export function parseEncryptionConfig(text: string): EncryptionProvider[] {
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
  let providers: EncryptionProvider[] | undefined;
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
  return providers!;
}

function parseProvider(p: unknown, at: string): EncryptionProvider {
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
