// The node agent's ServiceAccount tokens (the kubelet's token manager): a
// token for each pod's serviceAccountToken projection, obtained through
// TokenRequest bound to the pod, kept until 80 % of its lifetime has passed
// (or it is a day old) and then requested again; the periodic pod sync
// rewrites the file. A refresh that fails keeps the old token while it is
// still valid. A cluster without a signing key issues no tokens: the file is
// then left out, with a warning, and the pod starts without it.
import { type ApiClient, ApiClientError, resourcePath } from '../client/api.ts';
import { resolveKind } from '../client/kinds.ts';
import type { Logger } from '../informer/informer.ts';
import type { Pod } from '../informer/types.ts';
import { ContainerConfigError } from './runtime/env.ts';

/** Kubernetes' ServiceAccountTokenProjection (expirationSeconds defaults to 1 h there). */
export interface TokenProjection { audience?: string; expirationSeconds?: number; path: string }

interface Held { token: string; issuedAt: number; expiresAt: number }

const MAX_AGE_MS = 24 * 3600_000;
/** How long "this cluster issues no tokens" is believed before asking again. */
const NO_ISSUER_RECHECK_MS = 60_000;

/** Whether a token issued at `issuedAt` and expiring at `expiresAt` (ms) should be replaced at `now`. */
export function needsRefresh(t: { issuedAt: number; expiresAt: number }, now: number): boolean {
  return now >= t.issuedAt + 0.8 * (t.expiresAt - t.issuedAt) || now - t.issuedAt > MAX_AGE_MS;
}

export class ServiceAccountTokenManager {
  private readonly held = new Map<string, Held>();
  private readonly inflight = new Map<string, Promise<string | undefined>>();
  private noIssuerUntil = 0;

  constructor(private readonly client: ApiClient, private readonly log: Logger, private readonly now = () => Date.now()) {}

  /** The token for this pod's projection, or undefined when the cluster issues none (the file is then left out). */
  token(pod: Pod, p: TokenProjection): Promise<string | undefined> {
    const ns = pod.metadata.namespace ?? 'default';
    const sa = (pod.spec as { serviceAccountName?: string } | undefined)?.serviceAccountName || 'default';
    const expirationSeconds = p.expirationSeconds ?? 3600;
    const key = [pod.metadata.uid, sa, p.audience ?? '', expirationSeconds].join('\0');
    const have = this.held.get(key);
    if (have && !needsRefresh(have, this.now())) return Promise.resolve(have.token);
    let req = this.inflight.get(key);
    if (!req) {
      req = this.request(pod, ns, sa, p.audience, expirationSeconds, key, have).finally(() => this.inflight.delete(key));
      this.inflight.set(key, req);
    }
    return req;
  }

  /** Drops the tokens of a pod that is gone. */
  forget(podUid: string): void {
    for (const k of this.held.keys()) if (k.startsWith(`${podUid}\0`)) this.held.delete(k);
  }

  private async request(pod: Pod, ns: string, sa: string, audience: string | undefined, expirationSeconds: number, key: string, have?: Held): Promise<string | undefined> {
    if (this.now() < this.noIssuerUntil) return undefined;
    const started = this.now();
    try {
      const tr = await this.client.create<{ status?: { token?: string; expirationTimestamp?: string } }>(
        resourcePath(resolveKind('serviceaccounts')!, ns, sa, 'token'),
        {
          apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest',
          spec: { ...(audience ? { audiences: [audience] } : {}), expirationSeconds, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid } },
        },
      );
      const token = tr.status?.token;
      const expiresAt = Date.parse(tr.status?.expirationTimestamp ?? '');
      if (!token || !Number.isFinite(expiresAt)) throw new Error('the TokenRequest answer carries no token or expirationTimestamp');
      this.held.set(key, { token, issuedAt: started, expiresAt });
      return token;
    } catch (e) {
      if (e instanceof ApiClientError && e.code === 404 && e.details?.kind === 'serviceaccounts/token') {
        this.noIssuerUntil = this.now() + NO_ISSUER_RECHECK_MS;
        this.log.warn({ pod: `${ns}/${pod.metadata.name}`, reason: e.message }, 'no ServiceAccount token for the pod: the cluster issues none, the token file is left out');
        return undefined;
      }
      // As the kubelet: a token that is still valid outlives a failed refresh.
      if (have && this.now() < have.expiresAt) {
        this.log.warn({ pod: `${ns}/${pod.metadata.name}`, err: (e as Error).message }, 'refreshing a ServiceAccount token failed; the current one is kept');
        return have.token;
      }
      throw new ContainerConfigError(`MountVolume.SetUp failed: failed to fetch token: ${(e as Error).message}`);
    }
  }
}
