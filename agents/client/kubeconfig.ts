// kubeconfig files, as kubectl reads them: the current context's cluster
// (server, certificate-authority[-data], insecure-skip-tls-verify) and user
// (client-certificate[-data], client-key[-data], token, tokenFile). Relative
// paths are relative to the file, as in client-go. Not supported: merging
// several files of $KUBECONFIG (the first one that exists is used), exec and
// auth-provider plugins, proxy-url.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse } from 'yaml';

/** A client's TLS material and credentials (PEM text, not paths). */
export interface ClientCredentials {
  /** CA bundle the server's certificate must chain to. */
  ca?: string;
  /** Skip verifying the server's certificate (insecure-skip-tls-verify). */
  insecureSkipTlsVerify?: boolean;
  /** Client certificate and key (x509 authentication). */
  cert?: string;
  key?: string;
  /** Bearer token. */
  token?: string;
}

export interface Kubeconfig {
  /** The file it was read from. */
  path: string;
  context: string;
  server: string;
  namespace?: string;
  credentials: ClientCredentials;
}

/** A kubeconfig that cannot be used; the message names the file and the field. */
export class KubeconfigError extends Error {
  override name = 'KubeconfigError';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

function named(list: unknown, name: string, what: string, path: string): Obj {
  const e = Array.isArray(list) ? list.find((x) => isObj(x) && x.name === name) : undefined;
  if (!isObj(e)) throw new KubeconfigError(`${path}: ${what} "${name}" is not defined`);
  return e;
}

/** `field-data` (base64) or `field` (a path relative to the kubeconfig), as text. */
function material(o: Obj, field: string, path: string): string | undefined {
  const data = o[`${field}-data`];
  if (typeof data === 'string' && data) return Buffer.from(data, 'base64').toString('utf8');
  const file = o[field];
  if (typeof file !== 'string' || !file) return undefined;
  const p = resolve(dirname(path), file);
  try {
    return readFileSync(p, 'utf8');
  } catch (e) {
    throw new KubeconfigError(`${path}: ${field} ${p}: ${(e as Error).message}`);
  }
}

/** Reads a kubeconfig's current context (or `context`). */
export function loadKubeconfig(path: string, context?: string): Kubeconfig {
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new KubeconfigError(`cannot read kubeconfig ${path}: ${(e as Error).message}`);
  }
  if (!isObj(doc)) throw new KubeconfigError(`${path} is not a kubeconfig (not a YAML mapping)`);
  const ctxName = context ?? (typeof doc['current-context'] === 'string' ? doc['current-context'] : '');
  if (!ctxName) throw new KubeconfigError(`${path}: no current-context is set`);
  const ctx = named(doc.contexts, ctxName, 'context', path).context;
  if (!isObj(ctx)) throw new KubeconfigError(`${path}: context "${ctxName}" is empty`);
  const cluster = named(doc.clusters, String(ctx.cluster ?? ''), 'cluster', path).cluster;
  if (!isObj(cluster) || typeof cluster.server !== 'string' || !cluster.server) throw new KubeconfigError(`${path}: cluster "${String(ctx.cluster)}" has no server`);
  const user = ctx.user === undefined ? {} : named(doc.users, String(ctx.user), 'user', path).user;
  const u = isObj(user) ? user : {};
  const credentials: ClientCredentials = {
    ca: material(cluster, 'certificate-authority', path),
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true || undefined,
    cert: material(u, 'client-certificate', path),
    key: material(u, 'client-key', path),
  };
  if (!credentials.cert !== !credentials.key) throw new KubeconfigError(`${path}: user "${String(ctx.user)}" needs both client-certificate and client-key`);
  if (typeof u.token === 'string' && u.token) credentials.token = u.token;
  else if (typeof u.tokenFile === 'string' && u.tokenFile) {
    try {
      credentials.token = readFileSync(resolve(dirname(path), u.tokenFile), 'utf8').trim();
    } catch (e) {
      throw new KubeconfigError(`${path}: tokenFile: ${(e as Error).message}`);
    }
  }
  for (const k of Object.keys(credentials) as (keyof ClientCredentials)[]) if (credentials[k] === undefined) delete credentials[k];
  return { path, context: ctxName, server: cluster.server, namespace: typeof ctx.namespace === 'string' ? ctx.namespace : undefined, credentials };
}

/** A kubeconfig naming the files of a CA and a client pair (and/or a token), for kubectl and Flotilla's clients. */
export function kubeconfigYaml(o: { server: string; ca: string; cert?: string; key?: string; token?: string; user?: string; namespace?: string }): string {
  const user = o.user ?? 'user';
  const q = (s: string) => JSON.stringify(s);
  return [
    'apiVersion: v1', 'kind: Config', 'current-context: flotilla', 'preferences: {}',
    'clusters:', '- name: flotilla', '  cluster:', `    server: ${q(o.server)}`, `    certificate-authority: ${q(o.ca)}`,
    'contexts:', '- name: flotilla', '  context:', '    cluster: flotilla', `    user: ${q(user)}`, `    namespace: ${q(o.namespace ?? 'default')}`,
    'users:', `- name: ${q(user)}`, '  user:',
    ...(o.cert ? [`    client-certificate: ${q(o.cert)}`] : []),
    ...(o.key ? [`    client-key: ${q(o.key)}`] : []),
    ...(o.token ? [`    token: ${q(o.token)}`] : []),
    ...(!o.cert && !o.token ? ['    {}'] : []),
    '',
  ].join('\n');
}
