// Parsing of peer lists and addresses given on command lines.
import { readFileSync } from 'node:fs';
import { type PeerTlsOptions, checkOwnCertificate } from './transport.ts';
import type { NodeId } from './types.ts';

/** "1=127.0.0.1:7001,2=127.0.0.1:7002" → Map { '1' => '127.0.0.1:7001', ... } */
export function parsePeers(spec: string): Map<NodeId, string> {
  const peers = new Map<NodeId, string>();
  for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new Error(`bad peer "${part}": expected ID=HOST:PORT`);
    const id = part.slice(0, eq);
    const addr = part.slice(eq + 1);
    splitHostPort(addr);
    if (peers.has(id)) throw new Error(`peer ${id} is listed twice`);
    peers.set(id, addr);
  }
  if (!peers.size) throw new Error('no peers given');
  return peers;
}

/** "127.0.0.1:7001" → ['127.0.0.1', 7001]; throws a clear error otherwise. */
export function splitHostPort(addr: string): [string, number] {
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(addr.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`bad address "${addr}": expected HOST:PORT`);
  }
  return [host, port];
}

/** Command-line options every process that runs a Raft member takes (node:util parseArgs). */
export const RAFT_MEMBER_OPTIONS = {
  id: { type: 'string' },
  peers: { type: 'string' },
  data: { type: 'string' },
  join: { type: 'boolean', default: false },
  /** Founding members derive the cluster ID from it (see RaftNodeOptions.clusterToken). */
  'cluster-token': { type: 'string' },
  'tick-ms': { type: 'string' },
  'election-ticks': { type: 'string' },
  'snapshot-entries': { type: 'string' },
  /** Also snapshot once this many bytes of entries were applied since the last snapshot ("64Mi"). */
  'snapshot-bytes': { type: 'string' },
  /** Mutual TLS between members, named as etcd names it (client certificate authentication is always on with it). */
  'peer-cert-file': { type: 'string' },
  'peer-key-file': { type: 'string' },
  'peer-trusted-ca-file': { type: 'string' },
} as const;

/**
 * The peer TLS flags → the transport's options; undefined (plain TCP)
 * without them. All three or none: a member with half a TLS setup would
 * refuse its peers or be refused by them, so it stops here with the reason,
 * as it does when the files are not member `id`'s (before the data directory is touched).
 */
export function loadPeerTls(v: { id?: string; 'peer-cert-file'?: string; 'peer-key-file'?: string; 'peer-trusted-ca-file'?: string }): PeerTlsOptions | undefined {
  const flags = ['peer-cert-file', 'peer-key-file', 'peer-trusted-ca-file'] as const;
  const given = flags.filter((f) => v[f]);
  if (!given.length) return undefined;
  if (given.length < flags.length) {
    throw new Error(`peer TLS needs --${flags.join(', --')} together (missing --${flags.filter((f) => !v[f]).join(', --')})`);
  }
  const read = (f: (typeof flags)[number]) => {
    try {
      return readFileSync(v[f]!);
    } catch (e) {
      throw new Error(`--${f}: cannot read ${v[f]}: ${(e as Error).message}`, { cause: e });
    }
  };
  const o = { cert: read('peer-cert-file'), key: read('peer-key-file'), ca: read('peer-trusted-ca-file') };
  if (v.id !== undefined) checkOwnCertificate(v.id, o);
  return o;
}

/** "67108864", "64Mi", "512Ki", "1Gi", "100M" → bytes. */
export function parseBytes(v: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(|k|Ki|M|Mi|G|Gi)B?$/.exec(v.trim());
  if (!m) throw new Error(`${flag}: expected a size like 67108864, 64Mi, 1Gi (got "${v}")`);
  const unit = { '': 1, k: 1e3, Ki: 1024, M: 1e6, Mi: 1024 ** 2, G: 1e9, Gi: 1024 ** 3 }[m[2] as '' | 'k' | 'Ki' | 'M' | 'Mi' | 'G' | 'Gi'];
  return Math.floor(Number(m[1]) * unit);
}
