// `flotilla certs --peer ID`: Raft peer certificates that the transport accepts
// as that member's (raft/transport.ts), made once, never overwritten, keys 0600.
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import t from 'tap';
import { main } from '../bin/commands/certs.ts';
import { TcpTransport } from '../raft/transport.ts';

async function certs(argv: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const before = process.exitCode;
  process.exitCode = 0;
  await main(argv, { out: (s) => { out += s; }, err: (s) => { err += s; }, stdin: new PassThrough() });
  const code = Number(process.exitCode ?? 0);
  process.exitCode = before;
  return { out, err, code };
}

t.test('peer certificates per member', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-certs-peer-'));
  const r = await certs(['--dir', dir, '--peer', 's1,s2', '--peer', 's3']);
  t.equal(r.code, 0, r.err);
  for (const id of ['s1', 's2', 's3']) t.match(r.out, new RegExp(`created .*peer-${id}\\.crt \\(raft member "${id}"\\)`));
  const crt = join(dir, 'peer-s1.crt');
  const key = join(dir, 'peer-s1.key');
  t.equal(statSync(key).mode & 0o777, 0o600, 'the key is its owner\'s only');
  const c = new X509Certificate(readFileSync(crt));
  t.match(c.subject, /CN=flotilla-member-s1/);
  t.same(c.keyUsage?.sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'], 'serverAuth and clientAuth');
  // The transport takes it as member s1's (it checks the name, the CA and the key at construction).
  const tls = { cert: readFileSync(crt), key: readFileSync(key), ca: readFileSync(join(dir, 'ca.crt')) };
  t.doesNotThrow(() => new TcpTransport({ id: 's1', listen: '127.0.0.1:0', peers: new Map(), onMessage: () => {}, tls }));
  t.throws(() => new TcpTransport({ id: 's2', listen: '127.0.0.1:0', peers: new Map(), onMessage: () => {}, tls }), /not "flotilla-member-s2"/);

  const before = readFileSync(crt, 'utf8');
  const again = await certs(['--dir', dir, '--peer', 's1', '--peer', 's4']);
  t.equal(again.code, 0, again.err);
  t.match(again.out, /kept .*peer-s1\.crt/);
  t.match(again.out, /created .*peer-s4\.crt/, 'a member added later gets its own from the same CA');
  t.equal(readFileSync(crt, 'utf8'), before, 'never overwritten');
});

t.test('bad requests change nothing', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-certs-peer-'));
  const member = await certs(['--dir', dir, '--client', 'flotilla-member-s1']);
  t.equal(member.code, 1);
  t.match(member.err, /names starting with "flotilla-member-" are for peer certificates/);
  const bad = await certs(['--dir', dir, '--peer', 'a=b']);
  t.equal(bad.code, 1);
  t.match(bad.err, /--peer "a=b": .*not a member id/);
  const clash = await certs(['--dir', dir, '--client', 'peer-s1', '--peer', 's1']);
  t.equal(clash.code, 1);
  t.match(clash.err, /--peer "s1": its file name "peer-s1" is taken/);
  t.throws(() => statSync(join(dir, 'ca.crt')), 'nothing was written');
});
