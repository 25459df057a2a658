// ServiceAccount tokens (Kubernetes' bound service account tokens): JWTs
// signed with the cluster's key (--service-account-signing-key-file, shared by
// every server), carrying the standard claims and the `kubernetes.io` claim
// that names the namespace, the ServiceAccount and the object the token is
// bound to. A token authenticates only while it is unexpired, meant for one
// of the API's audiences, signed by an accepted key (--service-account-key-file)
// and while its ServiceAccount — and bound Pod or Secret — still exist with
// the uid the token names. JWS itself is the `jose` library's job.
import { X509Certificate, createHash, createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { readFlagFile } from '../../api/flag-file.ts';
import { SignJWT, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import type { StoredObject } from '../store.ts';
import type { UserInfo } from './rules.ts';

export const DEFAULT_ISSUER = 'https://kubernetes.default.svc.cluster.local';
export const SA_USER_PREFIX = 'system:serviceaccount:';
/** Kubernetes' go-jose default leeway for exp/nbf/iat, and for "deleted a moment ago". */
const LEEWAY_SECONDS = 60;

/** The user extra keys Kubernetes sets for service account users. */
const EXTRA = {
  podName: 'authentication.kubernetes.io/pod-name',
  podUid: 'authentication.kubernetes.io/pod-uid',
  nodeName: 'authentication.kubernetes.io/node-name',
  nodeUid: 'authentication.kubernetes.io/node-uid',
  credentialId: 'authentication.kubernetes.io/credential-id',
};

interface Ref { name: string; uid: string }

/** The private claim, as Kubernetes writes it. */
export interface KubernetesClaim {
  namespace: string;
  serviceaccount: Ref;
  pod?: Ref;
  secret?: Ref;
  node?: Ref;
}

/** Reads an object as this server knows it (falling back to the cluster when it is missing here). */
export type ObjectLookup = (res: string, ns: string, name: string) => Promise<StoredObject | undefined>;

interface VerifyKey { key: KeyObject; kid: string; alg: string }

/** Kubernetes' key id: the unpadded base64url SHA-256 of the DER public key. */
function keyId(pub: KeyObject): string {
  return createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('base64url');
}

/** RS256 for RSA keys, ES256/384/512 by curve for EC keys: the algorithms Kubernetes signs with. */
function algorithmOf(k: KeyObject, what: string): string {
  if (k.asymmetricKeyType === 'rsa') return 'RS256';
  if (k.asymmetricKeyType === 'ec') {
    const curve = k.asymmetricKeyDetails?.namedCurve;
    const alg = curve === 'prime256v1' ? 'ES256' : curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : undefined;
    if (alg) return alg;
    throw new Error(`${what}: EC curve ${curve ?? '(unknown)'} is not supported (P-256, P-384 or P-521)`);
  }
  throw new Error(`${what}: ${k.asymmetricKeyType ?? 'this'} key is not supported (RSA or ECDSA)`);
}

const readPem = readFlagFile;

/** Every public key in a PEM file: public keys, the public half of private keys, and certificates' keys. */
export function parsePublicKeys(pem: string, what: string): KeyObject[] {
  const out: KeyObject[] = [];
  for (const m of pem.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]+?-----END \1-----/g)) {
    const block = m[0];
    try {
      if (m[1] === 'CERTIFICATE') out.push(new X509Certificate(block).publicKey);
      else if (m[1].endsWith('PRIVATE KEY')) out.push(createPublicKey(createPrivateKey(block)));
      else out.push(createPublicKey(block));
    } catch (e) {
      throw new Error(`${what}: a ${m[1]} block could not be read: ${(e as Error).message}`);
    }
  }
  if (!out.length) throw new Error(`${what}: no PEM-encoded public key, private key or certificate found`);
  return out;
}

export interface ServiceAccountTokenOptions {
  /** PEM private key that signs tokens (--service-account-signing-key-file). */
  signingKeyFile?: string;
  /** PEM files of the keys tokens are accepted from (--service-account-key-file); default: the signing key's public half. */
  keyFiles?: string[];
  /** --service-account-issuer: the first one is written into tokens; tokens from any of them are accepted. */
  issuers?: string[];
  /** --api-audiences; default: the first issuer. */
  audiences?: string[];
}

export interface IssueRequest {
  namespace: string;
  serviceAccount: Ref;
  audiences: string[];
  expirationSeconds: number;
  pod?: Ref;
  secret?: Ref;
  node?: Ref;
}

export class ServiceAccountTokens {
  readonly issuer: string;
  readonly issuers: string[];
  /** The API's own audiences: what a token must be meant for to authenticate here, and what TokenRequest defaults to. */
  readonly audiences: string[];
  private readonly signing?: { key: KeyObject; kid: string; alg: string };
  private readonly verifying: VerifyKey[];

  constructor(o: { signingKey?: KeyObject; publicKeys: KeyObject[]; issuers?: string[]; audiences?: string[] }) {
    this.issuers = o.issuers?.length ? o.issuers : [DEFAULT_ISSUER];
    this.issuer = this.issuers[0];
    this.audiences = o.audiences?.length ? o.audiences : [this.issuer];
    if (o.signingKey) {
      const pub = createPublicKey(o.signingKey);
      this.signing = { key: o.signingKey, kid: keyId(pub), alg: algorithmOf(o.signingKey, '--service-account-signing-key-file') };
    }
    this.verifying = o.publicKeys.map((k) => ({ key: k, kid: keyId(k), alg: algorithmOf(k, '--service-account-key-file') }));
  }

  /** From the server's flags; a key file that cannot be read or used stops the server with a clear error. */
  static fromFiles(o: ServiceAccountTokenOptions): ServiceAccountTokens {
    let signingKey: KeyObject | undefined;
    if (o.signingKeyFile) {
      const pem = readPem(o.signingKeyFile, '--service-account-signing-key-file');
      try {
        signingKey = createPrivateKey(pem);
      } catch (e) {
        throw new Error(`--service-account-signing-key-file ${o.signingKeyFile}: not a PEM private key: ${(e as Error).message}`);
      }
    }
    const publicKeys = o.keyFiles?.length
      ? o.keyFiles.flatMap((f) => parsePublicKeys(readPem(f, '--service-account-key-file'), `--service-account-key-file ${f}`))
      : signingKey ? [createPublicKey(signingKey)] : [];
    for (const i of o.issuers ?? []) if (!i) throw new Error('--service-account-issuer must not be empty');
    return new ServiceAccountTokens({ signingKey, publicKeys, issuers: o.issuers, audiences: o.audiences });
  }

  /** Whether this server can issue tokens (TokenRequest needs a signing key). */
  get canSign(): boolean {
    return !!this.signing;
  }

  /** A signed token and its expiry, with Kubernetes' claims. */
  async issue(r: IssueRequest): Promise<{ token: string; expiration: Date }> {
    if (!this.signing) throw new Error('no signing key');
    const now = Math.floor(Date.now() / 1000);
    const exp = now + r.expirationSeconds;
    const k8s: KubernetesClaim = { namespace: r.namespace, serviceaccount: r.serviceAccount };
    if (r.pod) k8s.pod = r.pod;
    else if (r.secret) k8s.secret = r.secret;
    if (r.node) k8s.node = r.node;
    const token = await new SignJWT({ 'kubernetes.io': k8s })
      .setProtectedHeader({ alg: this.signing.alg, kid: this.signing.kid })
      .setIssuer(this.issuer)
      .setSubject(`${SA_USER_PREFIX}${r.namespace}:${r.serviceAccount.name}`)
      .setAudience(r.audiences)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(this.signing.key);
    return { token, expiration: new Date(exp * 1000) };
  }

  /** Whether a bearer token looks like one of ours (a JWT from one of our issuers): only then is it checked here. */
  claims(token: string): boolean {
    try {
      const iss = decodeJwt(token).iss;
      return !!iss && this.issuers.includes(iss);
    } catch {
      return false;
    }
  }

  /**
   * The ServiceAccount user a token stands for, or why it does not
   * authenticate (for the log, never for the caller: a refusal is a plain 401).
   */
  async authenticate(token: string, lookup: ObjectLookup): Promise<{ user: UserInfo } | { refused: string }> {
    let payload: Record<string, unknown>;
    try {
      const { kid, alg } = decodeProtectedHeader(token);
      const candidates = this.verifying.filter((k) => k.alg === alg && (!kid || k.kid === kid));
      if (!candidates.length) return { refused: 'not signed by an accepted key' };
      let last: unknown;
      let verified: Record<string, unknown> | undefined;
      for (const k of candidates) {
        try {
          verified = (await jwtVerify(token, k.key, {
            issuer: this.issuers, audience: this.audiences, algorithms: [k.alg], clockTolerance: LEEWAY_SECONDS, requiredClaims: ['exp', 'sub'],
          })).payload as Record<string, unknown>;
          break;
        } catch (e) {
          last = e;
          // Only a bad signature is worth trying the next key for.
          if ((e as { code?: string }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') break;
        }
      }
      if (!verified) return { refused: refusal(last) };
      payload = verified;
    } catch (e) {
      return { refused: `malformed token: ${(e as Error).message}` };
    }
    const k8s = payload['kubernetes.io'] as Partial<KubernetesClaim> | undefined;
    const ns = k8s?.namespace;
    const sa = k8s?.serviceaccount;
    if (!ns || !sa?.name || !sa.uid) return { refused: 'the kubernetes.io claim names no namespace and ServiceAccount' };
    if (payload.sub !== `${SA_USER_PREFIX}${ns}:${sa.name}`) return { refused: 'the subject does not match the kubernetes.io claim' };
    const deletedBefore = Date.now() - LEEWAY_SECONDS * 1000;
    const gone = (o: StoredObject) => {
      const ts = (JSON.parse(o.json) as { metadata?: { deletionTimestamp?: string } }).metadata?.deletionTimestamp;
      return !!ts && Date.parse(ts) < deletedBefore;
    };
    const account = await lookup('/serviceaccounts', ns, sa.name);
    if (!account || gone(account)) return { refused: `service account ${ns}/${sa.name} has been deleted` };
    if (account.uid !== sa.uid) return { refused: `service account UID (${account.uid}) does not match claim (${sa.uid})` };
    const extra: Record<string, string[]> = {};
    for (const [what, ref, res] of [['secret', k8s.secret, '/secrets'], ['pod', k8s.pod, '/pods']] as const) {
      if (!ref) continue;
      const o = ref.name ? await lookup(res, ns, ref.name) : undefined;
      if (!o || gone(o)) return { refused: `the bound ${what} ${ns}/${ref.name} is gone: the token has been invalidated` };
      if (o.uid !== ref.uid) return { refused: `${what} UID (${o.uid}) does not match the claim (${ref.uid})` };
    }
    if (k8s.pod) {
      extra[EXTRA.podName] = [k8s.pod.name];
      extra[EXTRA.podUid] = [k8s.pod.uid];
      if (k8s.node?.name) {
        extra[EXTRA.nodeName] = [k8s.node.name];
        if (k8s.node.uid) extra[EXTRA.nodeUid] = [k8s.node.uid];
      }
    }
    if (typeof payload.jti === 'string') extra[EXTRA.credentialId] = [`JTI=${payload.jti}`];
    return {
      user: {
        user: String(payload.sub), uid: sa.uid,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'],
        ...(Object.keys(extra).length ? { extra } : {}),
      },
    };
  }
}

function refusal(e: unknown): string {
  const code = (e as { code?: string } | undefined)?.code;
  if (code === 'ERR_JWT_EXPIRED') return 'service account token has expired';
  if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return 'signature verification failed';
  const claim = (e as { claim?: string } | undefined)?.claim;
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim === 'aud') return 'the token\'s audience is not one of this API\'s audiences';
  return `token claims could not be validated: ${(e as Error | undefined)?.message ?? 'unknown'}`;
}
