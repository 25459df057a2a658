import t from 'tap';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { FrameReader, TcpTransport, parseHostPort } from '../raft/transport.ts';
import { encodeMessage } from '../raft/codec.ts';
import { EntryType, MessageType, emptyMessage, type Message } from '../raft/types.ts';

const logger = pino({ level: 'silent' });

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const CLUSTER = 'test-cluster';
/** Members the test transports know (addresses are placeholders until setPeer; connections are lazy). */
const KNOWN = ['a', 'b', 'x'];

/** A started transport on an ephemeral loopback port, collecting what it receives; stopped at teardown. */
async function node(
  t: { teardown(fn: () => unknown): void }, id: string, listen = '127.0.0.1:0',
  clusterId: string | null = CLUSTER, onClusterId?: (id: string) => void,
) {
  const got: Message[] = [];
  const peers = new Map(KNOWN.filter((p) => p !== id).map((p) => [p, '127.0.0.1:1']));
  const tr = new TcpTransport({ id, listen, peers, clusterId: clusterId ?? undefined, onClusterId, onMessage: (m) => got.push(m), logger });
  t.teardown(() => tr.stop());
  await tr.start();
  return { tr, got };
}

function app(from: string, to: string, i: number): Message {
  const m = emptyMessage(MessageType.App, from, to, 7);
  m.index = i;
  m.logTerm = 7;
  m.commit = i;
  m.entries = [
    { term: 7, index: i + 1, type: EntryType.Normal, data: Buffer.from(`entry-${i}`) },
    { term: 7, index: i + 2, type: EntryType.ConfChange, data: Buffer.from([i & 0xff]) },
  ];
  return m;
}

function frame(body: Uint8Array): Buffer {
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length);
  return Buffer.concat([h, body]);
}

async function rawConnect(addr: string): Promise<net.Socket> {
  const { host, port } = parseHostPort(addr);
  const s = net.connect({ host, port });
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  return s;
}

/** A port that was free a moment ago. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

t.test('parseHostPort', async (t) => {
  t.same(parseHostPort('127.0.0.1:80'), { host: '127.0.0.1', port: 80 });
  t.same(parseHostPort('[::1]:9'), { host: '::1', port: 9 });
  t.throws(() => parseHostPort('nope'));
  t.throws(() => parseHostPort('h:70000'));
});

t.test('FrameReader handles split and coalesced frames', async (t) => {
  const bodies = Array.from({ length: 200 }, (_, i) => Buffer.alloc(i * 7 % 300, i & 0xff));
  bodies.push(Buffer.alloc(0), Buffer.alloc(70_000, 9));
  const stream = Buffer.concat(bodies.map(frame));
  for (const chunkSize of [1, 3, 4, 5, 64, 1000, stream.length]) {
    const r = new FrameReader(1 << 20);
    const out: Buffer[] = [];
    for (let off = 0; off < stream.length; off += chunkSize) {
      r.push(stream.subarray(off, off + chunkSize));
      for (let f; (f = r.next());) out.push(Buffer.from(f));
    }
    t.equal(out.length, bodies.length, `chunk ${chunkSize}: count`);
    t.ok(out.every((b, i) => b.equals(bodies[i]!)), `chunk ${chunkSize}: bytes`);
  }
  const r = new FrameReader(10);
  r.push(frame(Buffer.alloc(11)));
  t.throws(() => r.next(), /exceeds/);
});

t.test('two transports exchange 10k messages in order', async (t) => {
  const a = await node(t, 'a');
  const b = await node(t, 'b');
  a.tr.setPeer('b', b.tr.address);
  b.tr.setPeer('a', a.tr.address);

  const N = 10_000;
  for (let i = 0; i < N; i += 100) {
    // The first batches go out while the connection is still being made:
    // they wait in the bounded queue instead of being lost.
    a.tr.send(Array.from({ length: 100 }, (_, j) => app('a', 'b', i + j)));
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  b.tr.send([app('b', 'a', 1)]);
  await waitFor('10k messages', () => b.got.length === N && a.got.length === 1);
  t.ok(b.got.every((m, i) => m.index === i), 'in order');
  t.same(b.got[1234], { ...app('a', 'b', 1234), clusterId: CLUSTER }, 'intact');
  t.ok(Buffer.from(b.got[N - 1]!.entries[0]!.data).equals(Buffer.from(`entry-${N - 1}`)));
  t.equal(a.tr.stats.sent, N);
  t.equal(b.tr.stats.received, N);
  t.equal(a.tr.stats.dropped, 0);
  t.equal(b.tr.stats.badFrames, 0);
});

t.test('send never throws and counts what it drops', async (t) => {
  const a = await node(t, 'a');
  t.doesNotThrow(() => a.tr.send([app('a', 'nobody', 1)]));
  t.equal(a.tr.stats.dropped, 1);
  await a.tr.stop();
  t.doesNotThrow(() => a.tr.send([app('a', 'nobody', 1)]));
  t.equal(a.tr.stats.dropped, 2);
});

t.test('a peer that starts late still receives after reconnect', async (t) => {
  const a = await node(t, 'a');
  const port = await freePort();
  a.tr.setPeer('b', `127.0.0.1:${port}`);
  // Nobody listens yet: connection refused, backoff, messages dropped.
  for (let i = 0; i < 10; i++) {
    a.tr.send([app('a', 'b', i)]);
    await sleep(10);
  }
  t.ok(a.tr.stats.dropped > 0, 'messages dropped while the peer is down');

  const b = await node(t, 'b', `127.0.0.1:${port}`);
  let i = 100;
  while (b.got.length === 0) {
    a.tr.send([app('a', 'b', i++)]);
    await sleep(10);
    if (i > 1000) throw new Error('never delivered');
  }
  t.ok(a.tr.stats.reconnects > 0, `reconnects: ${a.tr.stats.reconnects}`);

  // The peer restarts: the old connection breaks, a new one is made.
  await b.tr.stop();
  const b2 = await node(t, 'b', `127.0.0.1:${port}`);
  while (b2.got.length === 0) {
    a.tr.send([app('a', 'b', i++)]);
    await sleep(10);
    if (i > 2000) throw new Error('never delivered after restart');
  }
  t.pass('delivered after the peer restarted');
});

t.test('garbage frames are counted and dropped; the connection keeps working', async (t) => {
  const a = await node(t, 'a');
  const b = await node(t, 'b');
  a.tr.setPeer('b', b.tr.address);

  const raw = await rawConnect(b.tr.address);
  t.teardown(() => raw.destroy());
  raw.write(Buffer.concat([
    frame(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])), // not protobuf
    frame(Buffer.from([0x08, 0x63])), // type 99: unknown
    frame(Buffer.alloc(0)), // decodes as Hup, which never travels
    frame(encodeMessage({ ...app('x', 'someone-else', 1), clusterId: CLUSTER })), // misrouted
    frame(encodeMessage({ ...app('x', 'b', 42), clusterId: CLUSTER })), // fine
  ]));
  await waitFor('the good frame', () => b.got.length === 1);
  t.equal(b.tr.stats.badFrames, 3);
  t.equal(b.tr.stats.misrouted, 1);
  t.equal(b.got[0]!.index, 42);
  t.notOk(raw.destroyed, 'raw connection still open');

  a.tr.send([app('a', 'b', 7)]);
  await waitFor('a message from a', () => b.got.length === 2);
  t.equal(b.got[1]!.from, 'a');
});

t.test('messages of another cluster or from an unknown sender are dropped and counted', async (t) => {
  const b = await node(t, 'b');
  const raw = await rawConnect(b.tr.address);
  t.teardown(() => raw.destroy());
  raw.write(Buffer.concat([
    frame(encodeMessage(app('x', 'b', 1))), // no cluster ID
    frame(encodeMessage({ ...app('x', 'b', 2), clusterId: 'another-cluster' })),
    frame(encodeMessage({ ...app('stranger', 'b', 3), clusterId: CLUSTER })), // not a peer
    frame(encodeMessage({ ...app('b', 'b', 4), clusterId: CLUSTER })), // claims to be b itself
    frame(encodeMessage({ ...app('x', 'b', 5), clusterId: CLUSTER })), // fine
  ]));
  await waitFor('the good frame', () => b.got.length === 1);
  t.equal(b.got[0]!.index, 5);
  t.equal(b.tr.stats.foreignCluster, 2, 'two frames of another cluster');
  t.equal(b.tr.stats.unknownSender, 2, 'two frames from senders that are not peers');
  t.equal(b.tr.stats.received, 1);
});

t.test('a joining member learns the cluster ID from the first message of a known peer', async (t) => {
  const learned: string[] = [];
  const j = await node(t, 'b', '127.0.0.1:0', null, (id) => learned.push(id));
  const raw = await rawConnect(j.tr.address);
  t.teardown(() => raw.destroy());
  raw.write(Buffer.concat([
    frame(encodeMessage(app('x', 'b', 1))), // no cluster ID: nothing to learn
    frame(encodeMessage({ ...app('stranger', 'b', 2), clusterId: 'evil' })), // not a peer: not trusted
    frame(encodeMessage({ ...app('x', 'b', 3), clusterId: CLUSTER })), // learned from this one
    frame(encodeMessage({ ...app('a', 'b', 4), clusterId: 'evil' })), // too late
    frame(encodeMessage({ ...app('a', 'b', 5), clusterId: CLUSTER })),
  ]));
  await waitFor('two good frames', () => j.got.length === 2);
  t.same(j.got.map((m) => m.index), [3, 5]);
  t.same(learned, [CLUSTER], 'learned once, from a peer');
  t.equal(j.tr.clusterId, CLUSTER);
  t.equal(j.tr.stats.foreignCluster, 3);
});

t.test('an oversized length prefix closes that connection only', async (t) => {
  const a = await node(t, 'a');
  const b = await node(t, 'b');
  a.tr.setPeer('b', b.tr.address);
  a.tr.send([app('a', 'b', 1)]);
  await waitFor('first message', () => b.got.length === 1);

  const raw = await rawConnect(b.tr.address);
  t.teardown(() => raw.destroy());
  const closed = new Promise<void>((r) => raw.once('close', () => r()));
  raw.on('error', () => {});
  raw.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
  await closed;
  t.equal(b.tr.stats.badFrames, 1);

  a.tr.send([app('a', 'b', 2)]);
  await waitFor('second message', () => b.got.length === 2);
  t.equal(a.tr.stats.reconnects, 0, 'the peer connection was not affected');
});

t.test('a message larger than the queue budget arrives intact', async (t) => {
  const a = await node(t, 'a');
  const b = await node(t, 'b');
  a.tr.setPeer('b', b.tr.address);
  const m = emptyMessage(MessageType.Snap, 'a', 'b', 3);
  m.snapshot = { index: 100, term: 3, conf: { voters: ['a', 'b'], learners: [] } };
  m.snapTotal = 5_000_000;
  m.snapData = Buffer.alloc(5_000_000, 5);
  // Bigger than maxQueueBytes (4 MiB), but nothing else is waiting: sent.
  a.tr.send([m]);
  await waitFor('snapshot chunk', () => b.got.length === 1);
  a.tr.send([app('a', 'b', 0)]);
  await waitFor('next message', () => b.got.length === 2);
  t.same(b.got[0]!.snapshot, m.snapshot);
  t.ok(Buffer.from(b.got[0]!.snapData).equals(m.snapData));
  t.equal(a.tr.stats.dropped, 0);
});

t.test('messages larger than maxFrameBytes are dropped by the sender', async (t) => {
  const got: Message[] = [];
  const a = new TcpTransport({ id: 'a', listen: '127.0.0.1:0', peers: new Map([['b', '127.0.0.1:1']]), onMessage: (m) => got.push(m), logger, maxFrameBytes: 100 });
  t.teardown(() => a.stop());
  const m = emptyMessage(MessageType.App, 'a', 'b', 1);
  m.entries = [{ term: 1, index: 1, type: EntryType.Normal, data: Buffer.alloc(200) }];
  a.send([m]);
  t.equal(a.stats.dropped, 1);
});

t.test('a listen error names the address', async (t) => {
  const a = await node(t, 'a');
  const b = new TcpTransport({ id: 'b', listen: a.tr.address, peers: new Map(), onMessage: () => {}, logger });
  t.teardown(() => b.stop());
  await t.rejects(b.start(), { message: new RegExp(`cannot listen on ${a.tr.address}: .*EADDRINUSE`) });
});
