// raft-kv: a replicated key-value store built on the Raft library alone (like
// etcd's raftexample). It is how the library is benchmarked against etcd.
//
//   flotilla raft-kv --id 1 --peers 1=127.0.0.1:P1,2=127.0.0.1:P2,3=127.0.0.1:P3 \
//                    --http 127.0.0.1:H --data DIR
//
// HTTP: PUT /kv/KEY (body = value; 200 once committed and applied here),
// GET /kv/KEY (linearizable via ReadIndex; ?stale=1 reads local state),
// DELETE /kv/KEY, GET /status, POST /members?id=&peer=[&learner=1],
// DELETE /members/ID, POST /transfer?to=ID, GET /healthz, GET /metrics.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';
import { pack, unpack } from 'msgpackr';
import pino from 'pino';
import client from 'prom-client';
import { registerRaftMetrics } from '../../metrics.ts';
import { RaftNode, type StateMachine } from '../../node.ts';
import { RaftError, Role } from '../../types.ts';
import { RAFT_MEMBER_OPTIONS, loadPeerTls, parseBytes, parsePeers, splitHostPort } from '../../peers.ts';

const MAX_VALUE_BYTES = 1 << 20;

type KvOp = { op: 'put'; k: string; v: Uint8Array } | { op: 'del'; k: string };

/** The replicated map. Deterministic: every member applies the same ops in the same order. */
export class KvStateMachine implements StateMachine {
  readonly map = new Map<string, Uint8Array>();
  /** Committed entries that were not a KV op: applied as no-ops (the same on every member). */
  rejected = 0;

  constructor(private readonly onReject?: (index: number, reason: string) => void) {}

  apply(entry: { index: number; data: Uint8Array }): boolean {
    const op = decodeOp(entry.data);
    if (typeof op === 'string') {
      this.rejected++;
      this.onReject?.(entry.index, op);
      return false;
    }
    if (op.op === 'put') {
      this.map.set(op.k, op.v);
      return true;
    }
    return this.map.delete(op.k);
  }

  snapshot(): Uint8Array {
    return pack([...this.map]);
  }

  restore(data: Uint8Array): void {
    this.map.clear();
    for (const [k, v] of unpack(data) as [string, Uint8Array][]) this.map.set(k, v);
  }
}

/** The op an entry holds, or why it holds none. Deterministic: depends on the bytes alone. */
function decodeOp(data: Uint8Array): KvOp | string {
  let op: KvOp;
  try {
    op = unpack(data) as KvOp;
  } catch (e) {
    return `undecodable: ${(e as Error).message}`;
  }
  if (!op || typeof op !== 'object' || typeof op.k !== 'string') return 'not a KV op';
  if (op.op === 'put' && op.v instanceof Uint8Array) return op;
  if (op.op === 'del') return op;
  return 'not a KV op';
}

export async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...RAFT_MEMBER_OPTIONS,
      http: { type: 'string' },
      /** Pipeline storage writes (RaftNodeOptions.asyncStorageWrites). */
      'async-storage-writes': { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (!values.id || !values.peers || !values.http || !values.data) {
    process.stderr.write('usage: flotilla raft-kv --id ID --peers ID=HOST:PORT,... --http HOST:PORT --data DIR [--join] [--async-storage-writes]\n');
    process.exit(2);
  }
  const log = pino({ name: 'raft-kv' });
  const peers = parsePeers(values.peers);
  if (!peers.has(values.id)) throw new Error(`--peers must include this member (${values.id})`);
  const sm = new KvStateMachine((index, reason) => log.warn({ index, reason }, 'raft-kv: entry %d is not a KV op; applied as a no-op', index));
  const node = await RaftNode.start({
    id: values.id,
    peers,
    dataDir: values.data,
    stateMachine: sm,
    logger: log,
    join: values.join,
    clusterToken: values['cluster-token'],
    tickMs: values['tick-ms'] ? Number(values['tick-ms']) : undefined,
    electionTick: values['election-ticks'] ? Number(values['election-ticks']) : undefined,
    snapshotEntries: values['snapshot-entries'] ? Number(values['snapshot-entries']) : undefined,
    snapshotBytes: values['snapshot-bytes'] ? parseBytes(values['snapshot-bytes'], '--snapshot-bytes') : undefined,
    asyncStorageWrites: values['async-storage-writes'],
    tls: loadPeerTls(values),
  });
  const server = createKvServer(node, sm, log);
  const [host, port] = splitHostPort(values.http);
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  log.info({ http: values.http, peer: peers.get(values.id) }, 'raft-kv member started');
  node.on('fatal', () => process.exit(1));
  const shutdown = async () => {
    server.close();
    await node.stop();
    process.exit(0);
  };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

export function createKvServer(node: RaftNode, sm: KvStateMachine, log: pino.Logger) {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const requests = new client.Counter({
    name: 'raftkv_requests_total', help: 'HTTP requests by method and outcome', labelNames: ['method', 'code'], registers: [registry],
  });
  new client.Gauge({
    name: 'raft_term', help: 'Current Raft term', registers: [registry], collect() { this.set(node.status().term); },
  });
  new client.Gauge({
    name: 'raft_commit_index', help: 'Raft commit index', registers: [registry], collect() { this.set(node.status().commit); },
  });
  new client.Gauge({
    name: 'raft_applied_index', help: 'Raft applied index', registers: [registry], collect() { this.set(node.appliedIndex); },
  });
  new client.Gauge({
    name: 'raftkv_rejected_entries', help: 'Committed entries that were not a KV op, applied as no-ops',
    registers: [registry], collect() { this.set(sm.rejected); },
  });
  registerRaftMetrics(registry, node);
  new client.Gauge({
    name: 'raft_is_leader', help: '1 on the leader', registers: [registry], collect() { this.set(node.role === Role.Leader ? 1 : 0); },
  });

  const send = (res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}) => {
    const buf = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
    res.writeHead(code, { 'content-type': typeof body === 'object' && !(body instanceof Uint8Array) ? 'application/json' : 'application/octet-stream', ...headers });
    res.end(buf);
  };
  const fail = (res: ServerResponse, e: unknown) => {
    if (e instanceof RaftError) {
      const code = e.code === 'too-large' ? 413 : 503;
      send(res, code, { error: e.message, code: e.code, leader: e.leader ?? node.leader }, { 'retry-after': '1' });
    } else {
      log.error({ err: e }, 'request failed');
      send(res, 500, { error: (e as Error).message });
    }
  };

  return createServer(async (req: IncomingMessage, res: ServerResponse) => {
    res.on('finish', () => requests.inc({ method: req.method ?? '', code: String(res.statusCode) }));
    const url = new URL(req.url ?? '/', 'http://x');
    try {
      if (url.pathname.startsWith('/kv/')) {
        const key = decodeURIComponent(url.pathname.slice(4));
        if (!key) return send(res, 400, { error: 'empty key' });
        if (req.method === 'PUT') {
          const body = await readBody(req, MAX_VALUE_BYTES);
          if (!body) return send(res, 413, { error: `value over ${MAX_VALUE_BYTES} bytes` });
          const { index } = await node.propose(pack({ op: 'put', k: key, v: body } satisfies KvOp));
          return send(res, 200, { index });
        }
        if (req.method === 'DELETE') {
          const { index, result } = await node.propose(pack({ op: 'del', k: key } satisfies KvOp));
          return send(res, result ? 200 : 404, { index });
        }
        if (req.method === 'GET') {
          if (url.searchParams.get('stale') !== '1') await node.readIndex();
          const v = sm.map.get(key);
          return v ? send(res, 200, v) : send(res, 404, { error: 'not found' });
        }
        return send(res, 405, { error: 'method not allowed' });
      }
      if (url.pathname === '/status' && req.method === 'GET') {
        const s = node.status();
        return send(res, 200, {
          id: s.id, role: s.role, term: s.term, leader: s.leader, commitIndex: s.commit, appliedIndex: s.applied,
          lastIndex: s.lastIndex, noVoteUntil: s.noVoteUntil, members: s.members,
        });
      }
      if (url.pathname === '/members' && req.method === 'POST') {
        const id = url.searchParams.get('id');
        const peer = url.searchParams.get('peer');
        if (!id || !peer) return send(res, 400, { error: 'id and peer are required' });
        const index = await node.addMember(id, peer, { learner: url.searchParams.get('learner') === '1' });
        return send(res, 200, { index });
      }
      if (url.pathname.startsWith('/members/') && req.method === 'DELETE') {
        const index = await node.removeMember(decodeURIComponent(url.pathname.slice(9)));
        return send(res, 200, { index });
      }
      if (url.pathname === '/transfer' && req.method === 'POST') {
        const to = url.searchParams.get('to');
        if (!to) return send(res, 400, { error: 'to is required' });
        await node.transferLeadership(to);
        return send(res, 200, { leader: to });
      }
      if (url.pathname === '/healthz') return send(res, 200, 'ok');
      if (url.pathname === '/metrics') return send(res, 200, await registry.metrics(), { 'content-type': registry.contentType });
      return send(res, 404, { error: 'not found' });
    } catch (e) {
      fail(res, e);
    }
  });
}

/** The request body, or undefined when it exceeds `limit` bytes. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
