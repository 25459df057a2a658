// The raft transport with mutual TLS: members talk; everything else is
// refused before a frame is read, counted per reason, and the listener keeps
// serving its members.
import t from 'tap';
import net from 'node:net';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { type KeyPair, createCA, issue, peerSpec } from '../agents/pki/pki.ts';
import { encodeMessage } from '../raft/codec.ts';
import { type PeerTlsOptions, TcpTransport, parseHostPort } from '../raft/transport.ts';
import { MessageType, emptyMessage, type Message } from '../raft/types.ts';

const logger = pino({ level: 'silent' });
const CLUSTER = 'tls-cluster';

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const ca = await createCA('test-ca');
const otherCa = await createCA('another-ca');
const peerPairs = new Map<string, KeyPair>();
for (const id of ['a', 'b', 'x']) peerPairs.set(id, await issue(ca, peerSpec(id)));

function tlsOf(id: string, extra: Partial<PeerTlsOptions> = {}): PeerTlsOptions {
  const p = peerPairs.get(id)!;
  return { key: p.key, cert: p.cert, ca: ca.cert, ...extra };
}

async function node(t: { teardown(fn: () => unknown): void }, id: string, peers: Map<string, string>, extra: Partial<PeerTlsOptions> = {}) {
  const got: Message[] = [];
  const tr = new TcpTransport({ id, listen: '127.0.0.1:0', peers, clusterId: CLUSTER, onMessage: (m) => got.push(m), logger, tls: tlsOf(id, extra) });
  t.teardown(() => tr.stop());
  await tr.start();
  return { tr, got };
}

function heartbeat(from: string, to: string): Message {
  const m = emptyMessage(MessageType.Heartbeat, from, to, 3);
  m.clusterId = CLUSTER;
  return m;
}

function frame(m: Message): Buffer {
  const body = encodeMessage(m);
  const h = Buffer.alloc(4);
  h.writeUInt32BE(body.length);
  return Buffer.concat([h, body]);
}

/** Resolves when the socket is closed by the other end (or errors). */
function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    if (s.destroyed) resolve();
    s.once('close', () => resolve());
    s.on('error', () => {});
  });
}

/** A TLS client to `addr` with `pair` (or none), that writes a forged frame once the handshake is done. */
async function tlsClient(addr: string, pair: KeyPair | undefined, payload: Buffer): Promise<tls.TLSSocket> {
  const { host, port } = parseHostPort(addr);
  // The attacker does not care who the server is: it only wants to get frames in.
  const s = tls.connect({ host, port, rejectUnauthorized: false, key: pair?.key, cert: pair?.cert });
  s.on('error', () => {});
  s.once('secureConnect', () => s.write(payload));
  return s;
}

t.test('two members talk over mutual TLS', async (t) => {
  const b = await node(t, 'b', new Map([['a', '127.0.0.1:1']]));
  const a = await node(t, 'a', new Map([['b', b.tr.address]]));
  b.tr.setPeer('a', a.tr.address);
  for (let i = 0; i < 100; i++) a.tr.send([heartbeat('a', 'b')]);
  b.tr.send([heartbeat('b', 'a')]);
  await waitFor('b receives 100', () => b.got.length === 100);
  await waitFor('a receives 1', () => a.got.length === 1);
  t.equal(b.got[0].from, 'a');
  t.same(Object.values(b.tr.stats.tlsRefused), [0, 0, 0, 0, 0], 'nothing refused');
});

t.test('a connection without a member certificate is refused before any frame, by reason', async (t) => {
  const b = await node(t, 'b', new Map([['a', '127.0.0.1:1'], ['x', '127.0.0.1:1']]));
  const forged = frame(heartbeat('a', 'b'));

  // Plain TCP with a well-formed frame of a member: not TLS.
  const { host, port } = parseHostPort(b.tr.address);
  const plain = net.connect({ host, port });
  plain.on('error', () => {});
  plain.write(forged);
  await closed(plain);
  await waitFor('tls-handshake counted', () => b.tr.stats.tlsRefused['tls-handshake'] === 1);

  // A peer certificate for member "a", but from another CA.
  const fake = await issue(otherCa, peerSpec('a'));
  await closed(await tlsClient(b.tr.address, fake, forged));
  await waitFor('untrusted-certificate counted', () => b.tr.stats.tlsRefused['untrusted-certificate'] === 1);

  // TLS without a client certificate.
  await closed(await tlsClient(b.tr.address, undefined, forged));
  await waitFor('no-certificate counted', () => b.tr.stats.tlsRefused['no-certificate'] === 1);

  // The right CA, but a name that is not a member: a user's client certificate, a member b does not know, b itself.
  const admin = await issue(ca, { commonName: 'admin', organizations: ['system:masters'], usages: ['client'] });
  const stranger = await issue(ca, peerSpec('zz'));
  const clientOnly = await issue(ca, { commonName: 'flotilla-member-a', usages: ['client'] });
  for (const p of [admin, stranger, peerPairs.get('b')!, clientOnly]) await closed(await tlsClient(b.tr.address, p, forged));
  await waitFor('not-a-member counted', () => b.tr.stats.tlsRefused['not-a-member'] === 4);

  t.equal(b.got.length, 0, 'no forged frame was delivered');
  t.equal(b.tr.stats.badFrames + b.tr.stats.received, 0, 'nothing was even read as a frame');

  // The listener still serves the members.
  const a = await node(t, 'a', new Map([['b', b.tr.address]]));
  a.tr.send([heartbeat('a', 'b')]);
  await waitFor('a member still gets through', () => b.got.length === 1);
});

t.test('a handshake that does not finish in time is closed and counted', async (t) => {
  const b = await node(t, 'b', new Map([['a', '127.0.0.1:1']]), { handshakeTimeoutMs: 200 });
  const { host, port } = parseHostPort(b.tr.address);
  const idle = net.connect({ host, port });
  await closed(idle);
  t.equal(b.tr.stats.tlsRefused['handshake-timeout'], 1);
});

t.test('a member speaks for itself only: frames from another sender are dropped', async (t) => {
  const b = await node(t, 'b', new Map([['a', '127.0.0.1:1'], ['x', '127.0.0.1:1']]));
  // Member a's own certificate, sending as x.
  const s = await tlsClient(b.tr.address, peerPairs.get('a')!, Buffer.concat([frame(heartbeat('x', 'b')), frame(heartbeat('a', 'b'))]));
  t.teardown(() => s.destroy());
  await waitFor('a frame from a delivered', () => b.got.length === 1);
  t.equal(b.got[0].from, 'a');
  t.equal(b.tr.stats.identityMismatch, 1, 'the frame claiming to be from x was dropped');
});

t.test('the dialer refuses a server that is not the member it meant', async (t) => {
  // x listens where a believes b is.
  const x = await node(t, 'x', new Map([['a', '127.0.0.1:1']]));
  const a = await node(t, 'a', new Map([['b', x.tr.address]]));
  a.tr.send([heartbeat('a', 'b')]);
  await waitFor('wrong identity counted', () => a.tr.stats.wrongPeerIdentity >= 1);
  await sleep(100);
  t.equal(x.got.length, 0, 'nothing reached the impostor');
  t.equal(a.tr.stats.sent, 0);
});

t.test('a removed member\'s connection is closed', async (t) => {
  const b = await node(t, 'b', new Map([['a', '127.0.0.1:1']]));
  const s = await tlsClient(b.tr.address, peerPairs.get('a')!, frame(heartbeat('a', 'b')));
  await waitFor('delivered', () => b.got.length === 1);
  b.tr.removePeer('a');
  await closed(s);
  t.pass('closed');
});

t.test('a member refuses to start with a certificate that is not its own', async (t) => {
  const mk = (id: string, o: PeerTlsOptions) => new TcpTransport({ id, listen: '127.0.0.1:0', peers: new Map(), onMessage: () => {}, logger, tls: o });
  t.throws(() => mk('b', tlsOf('a')), /common name is "flotilla-member-a", not "flotilla-member-b"/);
  t.throws(() => mk('a', { ...tlsOf('a'), ca: otherCa.cert }), /not issued by the trusted CA/);
  t.throws(() => mk('a', { ...tlsOf('a'), key: peerPairs.get('b')!.key }), /key does not belong/);
  const clientOnly = await issue(ca, { commonName: 'flotilla-member-a', usages: ['client'] });
  t.throws(() => mk('a', { key: clientOnly.key, cert: clientOnly.cert, ca: ca.cert }), /serverAuth and clientAuth/);
  t.throws(() => mk('a', { ...tlsOf('a'), cert: 'not a pem' }), /cannot read the certificate/);
});
