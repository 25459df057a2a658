// Where a client process finds its cluster. Every client (the CLI today,
// controllers, the scheduler and node agents later) resolves servers the same
// way, so that "which cluster am I talking to" has exactly one answer:
//
//   1. `--server URL[,URL…]` (an explicit flag always wins),
//   2. `$FLOTILLA_SERVER` (same syntax; convenient in shells and CI),
//   3. `./.flotilla/cluster.json`, written by `flotilla up` (its `servers[].api`),
//   4. otherwise an error that says how to point at a cluster.
//
// The NATS URL (for informers reading the EVENTS stream) comes from an explicit
// value, then `$FLOTILLA_NATS`, then cluster.json's `nats`.
//
// Credentials and TLS trust come from a kubeconfig, as kubectl's do:
// `--kubeconfig FILE`, then `$KUBECONFIG`, then the kubeconfig cluster.json
// names (when the servers came from cluster.json). A kubeconfig given with
// --kubeconfig and no --server also names the server (its current cluster's).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { type ClientCredentials, KubeconfigError, loadKubeconfig } from './kubeconfig.ts';

/** The cluster.json that `flotilla up` writes (only the fields clients read). */
export const CLUSTER_FILE = join('.flotilla', 'cluster.json');

export interface ClientConfig {
  /** API server base URLs (http://host:port, no trailing slash), in the order given. */
  servers: string[];
  /** NATS URL for JetStream consumers, when known. */
  nats?: string;
  /** Where `servers` came from, for messages ("--server", "$FLOTILLA_SERVER" or the file's path). */
  source: string;
  /** CA, client certificate and key, token (from a kubeconfig); none for a plain-HTTP cluster. */
  credentials?: ClientCredentials;
  /** The kubeconfig the credentials came from. */
  kubeconfig?: string;
}

export interface LoadConfigOptions {
  /** The value of `--server`, if the flag was given. */
  server?: string;
  /** The value of `--nats`, if the flag was given. */
  nats?: string;
  /** The value of `--kubeconfig`, if the flag was given. */
  kubeconfig?: string;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Directory holding `.flotilla/` (defaults to the current directory). */
  cwd?: string;
}

/** A configuration problem the user must fix; the message says how. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Turns `host:port`, `http://host:port/` or `https://…` into a base URL.
 * cluster.json stores bare `host:port` while flags usually carry URLs; both are accepted.
 */
export function normalizeServerUrl(raw: string): string {
  const s = raw.trim();
  if (!s) throw new ConfigError('empty server address');
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `http://${s}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new ConfigError(`invalid server address "${raw}": expected host:port or http(s)://host:port`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(`invalid server address "${raw}": only http and https are supported`);
  }
  if (u.search || u.hash) throw new ConfigError(`invalid server address "${raw}": no query or fragment allowed`);
  // Keep a path prefix (a server behind a proxy) but never a trailing slash,
  // so that `${base}${path}` never produces "//".
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

/** Splits `URL[,URL…]` (whitespace tolerated, empty entries ignored) and normalizes each. */
export function parseServerList(list: string): string[] {
  const out = list.split(',').map((s) => s.trim()).filter(Boolean).map(normalizeServerUrl);
  // Duplicates would only skew the spreading of requests across servers.
  return [...new Set(out)];
}

interface ClusterFile {
  servers?: { id?: string; api?: string }[];
  nats?: string;
  kubeconfig?: string;
}

function readClusterFile(path: string): ClusterFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a JSON object');
    return parsed as ClusterFile;
  } catch (e) {
    throw new ConfigError(`${path} is not valid cluster.json: ${(e as Error).message}`);
  }
}

const HOW_TO = 'point the client at a cluster with --server URL[,URL…], set $FLOTILLA_SERVER, '
  + `or run it in the directory where \`flotilla up\` wrote ${CLUSTER_FILE}`;

/** Reads a kubeconfig's credentials (and server) as a ConfigError when it cannot be used. */
function readKubeconfig(path: string): { server: string; credentials: ClientCredentials } {
  try {
    const k = loadKubeconfig(path);
    return { server: k.server, credentials: k.credentials };
  } catch (e) {
    if (e instanceof KubeconfigError) throw new ConfigError(e.message);
    throw e;
  }
}

/** Resolves the cluster to talk to and the credentials to use; throws ConfigError when there is none. */
export function loadClientConfig(opts: LoadConfigOptions = {}): ClientConfig {
  const env = opts.env ?? process.env;
  const cfg = resolveServers(opts, env);
  // --kubeconfig, then $KUBECONFIG (its first file, as kubeconfig.ts reads it), then cluster.json's.
  const explicit = opts.kubeconfig?.trim() || env.KUBECONFIG?.split(':').map((s) => s.trim()).find((f) => f && existsSync(resolve(opts.cwd ?? process.cwd(), f)));
  const path = explicit ? resolve(opts.cwd ?? process.cwd(), explicit) : cfg.clusterKubeconfig;
  if (!path) return cfg.config;
  const k = readKubeconfig(path);
  return { ...cfg.config, credentials: k.credentials, kubeconfig: path };
}

function resolveServers(opts: LoadConfigOptions, env: NodeJS.ProcessEnv): { config: ClientConfig; clusterKubeconfig?: string } {
  const file = resolve(opts.cwd ?? process.cwd(), CLUSTER_FILE);
  const natsOverride = opts.nats?.trim() || env.FLOTILLA_NATS?.trim() || undefined;

  if (opts.server !== undefined) {
    const servers = parseServerList(opts.server);
    if (!servers.length) throw new ConfigError(`--server is empty; ${HOW_TO}`);
    // cluster.json is not consulted for NATS here: an explicit --server may name
    // a different cluster than the one in the current directory.
    return { config: { servers, nats: natsOverride, source: '--server' } };
  }
  if (opts.kubeconfig?.trim()) {
    // kubectl's way: the kubeconfig names the server.
    const path = resolve(opts.cwd ?? process.cwd(), opts.kubeconfig.trim());
    return { config: { servers: [normalizeServerUrl(readKubeconfig(path).server)], nats: natsOverride, source: path } };
  }
  const fromEnv = env.FLOTILLA_SERVER?.trim();
  if (fromEnv) {
    const servers = parseServerList(fromEnv);
    if (servers.length) return { config: { servers, nats: natsOverride, source: '$FLOTILLA_SERVER' } };
  }
  const cf = readClusterFile(file);
  if (!cf) throw new ConfigError(`no Flotilla server configured: ${HOW_TO}`);
  const apis = Array.isArray(cf.servers) ? cf.servers.map((s) => s?.api).filter((a): a is string => typeof a === 'string' && !!a.trim()) : [];
  if (!apis.length) throw new ConfigError(`${file} lists no servers with an "api" address; ${HOW_TO}`);
  const servers = [...new Set(apis.map((a) => {
    try {
      return normalizeServerUrl(a);
    } catch (e) {
      throw new ConfigError(`${file}: ${(e as Error).message}`);
    }
  }))];
  const nats = natsOverride ?? (typeof cf.nats === 'string' && cf.nats.trim() ? cf.nats.trim() : undefined);
  // The kubeconfig `flotilla up` wrote (relative paths are relative to the .flotilla directory's parent, like `data`).
  const kc = typeof cf.kubeconfig === 'string' && cf.kubeconfig.trim() ? resolve(dirname(file), '..', cf.kubeconfig.trim()) : undefined;
  return { config: { servers, nats, source: file }, clusterKubeconfig: kc && existsSync(kc) ? kc : undefined };
}
