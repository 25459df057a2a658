// Three `flotilla server` processes whose Raft members talk mutual TLS
// (--peer-cert-file, --peer-key-file, --peer-trusted-ca-file): they elect,
// serve writes, survive a leader kill and take a new member; a plain TCP
// connection with a forged frame, a certificate of another CA and a
// certificate of the right CA that names no member are refused at the peer
// port, counted in /metrics, and the cluster keeps serving.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import { request } from 'undici';
import { createCA, ensureCA, issue, peerSpec } from '../agents/pki/pki.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { waitFor } from '../harness/procs.ts';
import { encodeMessage } from '../raft/codec.ts';
import { parseHostPort } from '../raft/transport.ts';
import { MessageType, emptyMessage } from '../raft/types.ts';

async function call(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const r = await request(`${url}${path}`, {
    method: method as 'GET', body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers }, headersTimeout: 15_000, bodyTimeout: 15_000,
  });
  const text = await r.body.text();
  try {
    return { status: r.statusCode, body: JSON.parse(text) };
  } catch {
    return { status: r.statusCode, body: text };
  }
}

const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { k: name } });

/** Creates a ConfigMap through `url`, retrying the answers of an election (503, 504; 409 after a retry means it landed). */
async function write(url: string, name: string): Promise<number> {
  return waitFor(`write ${name}`, async () => {
    const r = await call(url, 'POST', '/api/v1/namespaces/default/configmaps', cm(name));
    return r.status === 503 || r.status === 504 ? undefined : r.status;
  }, 20_000);
}

async function refused(url: string, reason: string): Promise<number> {
  const text = (await call(url, 'GET', '/metrics')).body as string;
  const m = new RegExp(`^raft_transport_refused_connections\\{reason="${reason}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

function closed(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    s.on('error', () => {});
    if (s.destroyed) resolve();
    else s.once('close', () => resolve());
  });
}

t.test('raft peers over mutual TLS', async (t) => {
  const c = await FlotillaCluster.start(3, { peerTls: true });
  t.teardown(() => c.stop());
  const pkiDir = c.peerPkiDir!;
  t.equal(await write(c.urls[0], 'before'), 201, 'the TLS cluster serves writes');
  const leader = await c.leader();
  const url = c.member(leader).url;
  const { host, port } = parseHostPort(c.member(leader).peer);
  for (const r of ['tls-handshake', 'untrusted-certificate', 'not-a-member']) t.equal(await refused(url, r), 0, `no ${r} refusal yet`);

  // A well-formed frame claiming to be from a member, over plain TCP: a vote request of a high term.
  const other = c.members.find((m) => m.id !== leader)!.id;
  const vote = emptyMessage(MessageType.Vote, other, leader, 1_000_000);
  const body = encodeMessage(vote);
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0]), body]);
  frame.writeUInt32BE(body.length, 0);
  const plain = net.connect({ host, port });
  plain.on('error', () => {});
  plain.write(frame);
  await closed(plain);
  await waitFor('the plain connection counted', async () => (await refused(url, 'tls-handshake')) === 1);

  // A peer certificate naming a member, from another CA.
  const otherCa = await createCA('another-ca');
  const forged = await issue(otherCa, peerSpec(other));
  // The cluster CA's certificate for a name that is not a member.
  const { ca } = await ensureCA(pkiDir);
  const stranger = await issue(ca, peerSpec('s9'));
  for (const pair of [forged, stranger]) {
    const s = tls.connect({ host, port, key: pair.key, cert: pair.cert, rejectUnauthorized: false });
    s.once('secureConnect', () => s.write(frame));
    await closed(s);
  }
  await waitFor('the other CA counted', async () => (await refused(url, 'untrusted-certificate')) === 1);
  await waitFor('the non-member counted', async () => (await refused(url, 'not-a-member')) === 1);
  const status = await c.status(leader);
  t.equal(status?.role, 'leader', 'the forged vote of a high term did not depose the leader');
  t.equal(await write(c.urls[1], 'after-attacks'), 201, 'the cluster keeps serving writes');
  const logged = readFileSync(c.member(leader).proc!.logFile, 'utf8').split('\n').filter((l) => l.includes('refusing raft connection'));
  t.equal(logged.length, 1, 'three refusals from one source address, logged once (rate limited per source)');
  t.match(logged[0], /"reason":"tls-handshake"/, 'the first one, with its reason');

  // A leader kill: the others elect over TLS and keep writing.
  await c.kill(leader);
  const next = await c.leader([leader]);
  t.not(next, leader, `a new leader (${next})`);
  t.equal(await write(c.member(next).url, 'after-kill'), 201, 'writes after the failover');
  c.startMember(leader);
  await c.waitReady([leader]);

  // A new member joins with its own peer certificate.
  const s4 = await c.addServer('s4');
  const admin = { authorization: `Bearer ${readFileSync(join(c.members[0].dataDir, 'admin-token'), 'utf8').trim()}` };
  const add = await call(c.member(next).url, 'POST', '/cluster/members', { id: 's4', peer: s4.peer }, admin);
  t.equal(add.status, 200, `add-member: ${JSON.stringify(add.body).slice(0, 200)}`);
  await waitFor('s4 a voter', async () => (await c.status(next))?.members.find((m) => m.id === 's4')?.voter, 20_000);
  await c.waitReady(['s4']);
  const g = await call(s4.url, 'GET', '/api/v1/namespaces/default/configmaps/after-kill');
  t.equal(g.status, 200, 'the new member serves linearizable reads');
  for (const m of c.alive()) {
    for (const r of ['untrusted-certificate', 'no-certificate', 'handshake-timeout']) {
      if (m.id !== leader || r !== 'untrusted-certificate') t.equal(await refused(m.url, r), 0, `${m.id}: no ${r} between members`);
    }
  }
});
