// The cluster's PKI: one CA, serving certificates for the API servers and
// client certificates for users and components (CN = user, O = groups, as
// Kubernetes' x509 authenticator reads them). Shared by `flotilla certs`,
// `flotilla up --tls` and the test harness, so every certificate in a cluster
// is made the same way.
//
// Built on @peculiar/x509 (a well-kept library over WebCrypto) rather than
// hand-written ASN.1. Keys are ECDSA P-256 (small, fast handshakes; accepted
// by Go's crypto/tls, so by kubectl). Like kubeadm, files are created once and
// never overwritten: an existing CA signs the new leaves, an existing leaf is
// kept after checking that it still matches what was asked.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { MEMBER_CN_PREFIX, memberCommonName } from '../../raft/transport.ts';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
/** kubeadm's lifetimes: the CA for ten years, leaves for one. */
export const CA_DAYS = 3650;
export const LEAF_DAYS = 365;

/** A certificate and its private key, both PEM. */
export interface KeyPair {
  cert: string;
  key: string;
}

export interface LeafSpec {
  /** The subject's CN: the user name of a client certificate. */
  commonName: string;
  /** O entries: the groups of a client certificate. */
  organizations?: string[];
  /** SANs of a serving certificate. */
  dnsNames?: string[];
  ips?: string[];
  /** serverAuth, clientAuth, or both (a server that also calls other servers). */
  usages: ('server' | 'client')[];
  days?: number;
}

/** A PKI request the user must fix; nothing was written. */
export class PkiError extends Error {
  override name = 'PkiError';
}

function pemKey(der: ArrayBuffer): string {
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new PkiError('no PEM block in the private key');
  return webcrypto.subtle.importKey('pkcs8', der, KEY_ALG, true, ['sign']) as Promise<CryptoKey>;
}

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

/** A positive random 128-bit serial (the top bit clear, so DER needs no sign byte). */
function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  return b.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  // A minute back: a freshly made certificate must not be "not yet valid" on a clock a little behind.
  const now = Date.now();
  return { notBefore: new Date(now - 60_000), notAfter: new Date(now + days * DAY_MS) };
}

/** A subject as RDNs (never a string: names such as "system:masters" or ones with commas need no escaping). */
function subject(cn: string, orgs: string[] = []): x509.JsonName {
  return [...orgs.map((o) => ({ O: [o] })), { CN: [cn] }];
}

/** A new self-signed CA. */
export async function createCA(commonName = 'flotilla-ca', days = CA_DAYS): Promise<KeyPair> {
  const keys = await newKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(), name: subject(commonName), keys, signingAlgorithm: SIGN_ALG, ...validity(days),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as webcrypto.CryptoKey)) };
}

/** A leaf certificate signed by `ca`. */
export async function issue(ca: KeyPair, spec: LeafSpec): Promise<KeyPair> {
  checkSpec(spec);
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await importKey(ca.key);
  const keys = await newKeys();
  const sans: x509.JsonGeneralName[] = [
    ...(spec.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(spec.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const eku = spec.usages.map((u) => (u === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(), subject: subject(spec.commonName, spec.organizations), issuer: caCert.subject,
    publicKey: keys.publicKey, signingKey: caKey, signingAlgorithm: SIGN_ALG, ...validity(spec.days ?? LEAF_DAYS),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      // ECDSA keys sign; they never encipher (keyEncipherment is for RSA key transport).
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(eku),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
      ...(sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
    ],
  });
  return { cert: cert.toString('pem'), key: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey as webcrypto.CryptoKey)) };
}

function checkSpec(spec: LeafSpec): void {
  if (!spec.commonName.trim()) throw new PkiError('a certificate needs a non-empty common name (the user)');
  for (const ip of spec.ips ?? []) if (!isIP(ip)) throw new PkiError(`"${ip}" is not an IP address`);
  for (const d of spec.dnsNames ?? []) {
    if (!/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(d)) throw new PkiError(`"${d}" is not a DNS name`);
  }
  if (!spec.usages.length) throw new PkiError('a certificate needs a usage (server or client)');
}

// ------------------------------------------------------------------ files

/** Where `name`'s certificate and key live in `dir`: name.crt, name.key (kubeadm's layout). */
export function pairPaths(dir: string, name: string): { cert: string; key: string } {
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

function readPair(dir: string, name: string): KeyPair | undefined {
  const p = pairPaths(dir, name);
  const hasCert = existsSync(p.cert);
  const hasKey = existsSync(p.key);
  if (!hasCert && !hasKey) return undefined;
  if (hasCert !== hasKey) throw new PkiError(`${hasCert ? p.cert : p.key} exists without ${hasCert ? p.key : p.cert}: remove it or restore its pair`);
  return { cert: readFileSync(p.cert, 'utf8'), key: readFileSync(p.key, 'utf8') };
}

/** Writes a pair that does not exist yet: the key 0600 (its owner only), the certificate 0644; `wx` never overwrites. */
function writePair(dir: string, name: string, pair: KeyPair): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const p = pairPaths(dir, name);
  writeFileSync(p.key, pair.key, { mode: 0o600, flag: 'wx' });
  writeFileSync(p.cert, pair.cert, { mode: 0o644, flag: 'wx' });
}

/** The CA in `dir` (ca.crt, ca.key), created if absent. */
export async function ensureCA(dir: string, commonName?: string): Promise<{ ca: KeyPair; created: boolean }> {
  const existing = readPair(dir, 'ca');
  if (existing) {
    const c = new x509.X509Certificate(existing.cert);
    if (!c.getExtension(x509.BasicConstraintsExtension)?.ca) throw new PkiError(`${pairPaths(dir, 'ca').cert} is not a CA certificate`);
    await importKey(existing.key); // a damaged key fails here, before anything is signed with it
    return { ca: existing, created: false };
  }
  const ca = await createCA(commonName);
  writePair(dir, 'ca', ca);
  return { ca, created: true };
}

/** What an existing leaf lacks of `spec` ('' when it covers it), or why it does not belong to `ca`. */
async function mismatch(ca: KeyPair, pair: KeyPair, spec: LeafSpec): Promise<string> {
  const c = new x509.X509Certificate(pair.cert);
  const caCert = new x509.X509Certificate(ca.cert);
  if (!(await c.verify({ publicKey: caCert.publicKey, signatureOnly: true }))) return 'it was not signed by this CA';
  if (c.notAfter.getTime() < Date.now()) return `it expired on ${c.notAfter.toISOString()}`;
  const cn = c.subjectName.getField('CN')[0];
  if (cn !== spec.commonName) return `its common name is "${cn}", not "${spec.commonName}"`;
  const orgs = c.subjectName.getField('O');
  const want = spec.organizations ?? [];
  if (orgs.length !== want.length || want.some((o) => !orgs.includes(o))) return `its groups are [${orgs.join(', ')}], not [${want.join(', ')}]`;
  const san = c.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON() ?? [];
  const has = (type: string, v: string) => san.some((n) => n.type === type && n.value.toLowerCase() === v.toLowerCase());
  for (const ip of spec.ips ?? []) if (!has('ip', ip)) return `it does not cover IP ${ip}`;
  for (const d of spec.dnsNames ?? []) if (!has('dns', d)) return `it does not cover DNS name ${d}`;
  return '';
}

/**
 * `name`'s certificate in `dir`, issued by `ca` if absent. An existing one is
 * kept only if it was signed by `ca` and covers `spec`; otherwise a PkiError
 * says what is wrong (the user removes the pair to have it made again).
 */
export async function ensureLeaf(dir: string, name: string, ca: KeyPair, spec: LeafSpec): Promise<{ pair: KeyPair; created: boolean }> {
  checkSpec(spec);
  const existing = readPair(dir, name);
  if (existing) {
    const why = await mismatch(ca, existing, spec);
    if (why) throw new PkiError(`${pairPaths(dir, name).cert} exists but ${why}; remove ${name}.crt and ${name}.key to have it made again`);
    return { pair: existing, created: false };
  }
  const pair = await issue(ca, spec);
  writePair(dir, name, pair);
  return { pair, created: true };
}

/** A file name for a user's pair: "system:node:n1" → "system-node-n1". */
export function fileNameFor(user: string): string {
  return user.replace(/[^A-Za-z0-9._-]+/g, '-');
}

// ------------------------------------------------------------------ Raft peers

/**
 * A Raft member's peer certificate (raft/transport.ts): CN
 * "flotilla-member-<id>", serverAuth and clientAuth (a member both listens
 * and dials). The transport checks the name, not the address, so no SANs
 * are needed; any given are added (for tools that check addresses).
 */
export function peerSpec(memberId: string, days?: number, ips: string[] = []): LeafSpec {
  if (!memberId.trim() || /[\s,=]/.test(memberId)) throw new PkiError(`"${memberId}" is not a member id (no spaces, commas or "=")`);
  return { commonName: memberCommonName(memberId), usages: ['server', 'client'], days, ips };
}

/** The file name (without .crt/.key) of member `id`'s peer pair: peer-<id>. */
export function peerFileName(memberId: string): string {
  return `peer-${fileNameFor(memberId)}`;
}

/** Whether a user name is reserved for member certificates (a client certificate must not carry it). */
export function isMemberName(user: string): boolean {
  return user.startsWith(MEMBER_CN_PREFIX);
}

/** Member `id`'s peer certificate in `dir`, issued by `ca` if absent (never overwritten). */
export async function ensurePeerCert(dir: string, ca: KeyPair, memberId: string, days?: number): Promise<{ pair: KeyPair; created: boolean; paths: { cert: string; key: string } }> {
  const name = peerFileName(memberId);
  const r = await ensureLeaf(dir, name, ca, peerSpec(memberId, days));
  return { ...r, paths: pairPaths(dir, name) };
}
