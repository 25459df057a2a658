// Authentication and authorization in front of every API request.
//
// Authentication: a client certificate verified against --client-ca-file
// (x509.ts), then a bearer token from --token-auth-file or a ServiceAccount
// token (service-account-token.ts), otherwise system:anonymous (or 401 with --anonymous-auth=false); impersonation
// headers are then honoured if the caller may `impersonate`.
// Authorization: AlwaysAllow (the default until TLS and component identities
// arrive), or a chain like Kubernetes' `--authorization-mode Node,RBAC`: the
// Node authorizer (node agents, node-authorizer.ts) then RBAC over the
// server's own store; the first that allows wins.
import type { IncomingMessage } from 'node:http';
import { ApiError, qualified } from '../errors.ts';
import type { ObjectStore } from '../store.ts';
import { NodeAuthorizer } from './node-authorizer.ts';
import { RbacAuthorizer } from './rbac.ts';
import type { ObjectLookup, ServiceAccountTokens } from './service-account-token.ts';
import { authenticateCertificate } from '../../api/x509-client-auth.ts';
import { type Attributes, type UserInfo, forbiddenMessage } from './rules.ts';

/** `--authorization-mode` as given: AlwaysAllow, or a comma-separated chain of Node and RBAC. */
export type AuthorizationMode = string;

export interface AuthOptions {
  mode: AuthorizationMode;
  tokens: Map<string, UserInfo>;
  anonymous: boolean;
  /** ServiceAccount JWTs, when the server has keys for them; `refused` hears why a token was turned away (for the log). */
  serviceAccounts?: { tokens: ServiceAccountTokens; lookup: ObjectLookup; refused?: (reason: string) => void };
}

export const ANONYMOUS = 'system:anonymous';
export const AUTHENTICATED = 'system:authenticated';
export const UNAUTHENTICATED = 'system:unauthenticated';
const SA_PREFIX = 'system:serviceaccount:';

export function parseAuthorizationMode(v: string): AuthorizationMode {
  const modes = v.split(',').map((m) => m.trim());
  const known = new Set(['AlwaysAllow', 'Node', 'RBAC']);
  const bad = modes.find((m) => !known.has(m));
  if (bad !== undefined || new Set(modes).size !== modes.length || (modes.includes('AlwaysAllow') && modes.length > 1)) {
    throw new Error(`--authorization-mode: "${v}" is not supported (AlwaysAllow, RBAC, or Node,RBAC)`);
  }
  if (modes.includes('Node') && !modes.includes('RBAC')) throw new Error('--authorization-mode: Node needs RBAC after it (Node,RBAC): it decides only for node agents');
  return modes.join(',');
}

export function parseBoolFlag(v: string, flag: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new Error(`${flag}: "${v}" is not a boolean (true or false)`);
}

/** The groups a ServiceAccount user belongs to. */
function serviceAccountGroups(user: string): string[] {
  if (!user.startsWith(SA_PREFIX)) return [];
  const ns = user.slice(SA_PREFIX.length).split(':')[0];
  return ['system:serviceaccounts', `system:serviceaccounts:${ns}`];
}

function withAuthenticated(u: UserInfo): UserInfo {
  return u.groups.includes(AUTHENTICATED) ? u : { ...u, groups: [...u.groups, AUTHENTICATED] };
}

const unauthorized = () => new ApiError(401, 'Unauthorized', 'Unauthorized');

/** Kubernetes' Forbidden Status for these attributes. */
export function forbidden(user: string, a: Attributes, reason = ''): ApiError {
  const msg = forbiddenMessage(user, a) + (reason ? `: ${reason}` : '');
  if (!a.resourceRequest) return new ApiError(403, 'Forbidden', `forbidden: ${msg}`, {});
  const what = qualified(a.apiGroup, a.resource);
  return new ApiError(403, 'Forbidden', a.name ? `${what} "${a.name}" is forbidden: ${msg}` : `${what} is forbidden: ${msg}`,
    { name: a.name || undefined, group: a.apiGroup, kind: a.resource });
}

export class Auth {
  readonly rbac?: RbacAuthorizer;
  readonly node?: NodeAuthorizer;

  constructor(private readonly o: AuthOptions, store: ObjectStore) {
    const modes = o.mode.split(',');
    if (modes.includes('RBAC')) this.rbac = new RbacAuthorizer(store);
    if (modes.includes('Node')) this.node = new NodeAuthorizer(store);
  }

  get mode(): AuthorizationMode {
    return this.o.mode;
  }

  /** The issuer of ServiceAccount tokens (TokenRequest), if this server has one. */
  get serviceAccountTokens(): ServiceAccountTokens | undefined {
    return this.o.serviceAccounts?.tokens;
  }

  allowed(u: UserInfo, a: Attributes): boolean {
    if (!this.rbac) return true;
    return !!this.node?.authorize(u, a) || this.rbac.authorize(u, a);
  }

  authorize(u: UserInfo, a: Attributes): void {
    if (!this.allowed(u, a)) throw forbidden(u.user, a);
  }

  /** Who is asking: the token's user, or anonymous; then whoever the impersonation headers name, if allowed. */
  async authenticate(req: IncomingMessage): Promise<UserInfo> {
    const who = await this.requester(req);
    return this.impersonate(req, who) ?? who;
  }

  private async requester(req: IncomingMessage): Promise<UserInfo> {
    // Kubernetes' order: the client certificate first, then a bearer token.
    const cert = authenticateCertificate(req);
    if (cert && 'user' in cert) return withAuthenticated(cert.user);
    const h = req.headers.authorization;
    if (h !== undefined) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(String(h));
      const u = m ? this.o.tokens.get(m[1]) ?? await this.serviceAccountUser(m[1]) : undefined;
      // A credential that is presented but not valid is refused, never downgraded to anonymous.
      if (!u) throw unauthorized();
      const groups = u.groups.includes(AUTHENTICATED) ? [...u.groups] : [...u.groups, AUTHENTICATED];
      return { user: u.user, uid: u.uid, groups, ...(u.extra ? { extra: u.extra } : {}) };
    }
    // A certificate that did not verify is an error no other credential made up for: never anonymous.
    if (cert || !this.o.anonymous) throw unauthorized();
    return { user: ANONYMOUS, groups: [UNAUTHENTICATED] };
  }

  private async serviceAccountUser(token: string): Promise<UserInfo | undefined> {
    const sa = this.o.serviceAccounts;
    if (!sa?.tokens.claims(token)) return undefined;
    const r = await sa.tokens.authenticate(token, sa.lookup);
    if ('user' in r) return r.user;
    sa.refused?.(r.refused);
    return undefined;
  }

  /** Kubernetes' impersonation filter: every header is checked against the `impersonate` verb. */
  private impersonate(req: IncomingMessage, who: UserInfo): UserInfo | undefined {
    const header = (n: string) => {
      const v = req.headers[n];
      return v === undefined ? [] : Array.isArray(v) ? v : String(v).split(',').map((x) => x.trim()).filter(Boolean);
    };
    const user = header('impersonate-user')[0];
    const groups = header('impersonate-group');
    const uid = header('impersonate-uid')[0];
    const extra: Record<string, string[]> = {};
    for (const k of Object.keys(req.headers)) {
      if (k.startsWith('impersonate-extra-')) extra[decodeURIComponent(k.slice('impersonate-extra-'.length))] = header(k);
    }
    if (user === undefined) {
      if (groups.length || uid || Object.keys(extra).length) {
        throw new ApiError(500, 'InternalError', 'Internal error occurred: requested [' + [...groups.map((g) => `group=${g}`), ...(uid ? [`uid=${uid}`] : [])].join(' ') + '] without impersonating a user');
      }
      return undefined;
    }
    const check = (a: Attributes) => { if (!this.allowed(who, a)) throw forbidden(who.user, a); };
    const res = (resource: string, name: string, apiGroup = '', namespace = '', subresource = ''): Attributes =>
      ({ resourceRequest: true, verb: 'impersonate', apiGroup, resource, subresource, namespace, name });
    if (user.startsWith(SA_PREFIX)) {
      const [ns, name] = user.slice(SA_PREFIX.length).split(':');
      check(res('serviceaccounts', name ?? '', '', ns ?? ''));
    } else {
      check(res('users', user));
    }
    for (const g of groups) check(res('groups', g));
    if (uid) check(res('uids', uid, 'authentication.k8s.io'));
    for (const [k, vs] of Object.entries(extra)) for (const v of vs) check(res('userextras', v, 'authentication.k8s.io', '', k));
    const out = [...groups];
    if (!groups.length) out.push(...serviceAccountGroups(user));
    if (user === ANONYMOUS) {
      if (!out.includes(UNAUTHENTICATED)) out.push(UNAUTHENTICATED);
    } else if (!out.includes(AUTHENTICATED)) out.push(AUTHENTICATED);
    return { user, groups: out, ...(uid ? { uid } : {}), ...(Object.keys(extra).length ? { extra } : {}) };
  }
}
