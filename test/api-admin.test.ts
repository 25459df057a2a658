// The admin endpoints (POST/DELETE /cluster/members) need the admin token;
// followers forward membership changes to the leader's address as the servers
// replicated it, never to an address a client wrote into a Lease; slow
// senders are cut off while long watches keep going.
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { isLoopback, tokenAccepted, hashToken } from '../apiserver/http/members.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { FLOTILLA_BIN, sleep, waitFor } from '../harness/procs.ts';

async function call(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const r = await request(`${url}${path}`, {
    method: method as 'GET',
    body: body === undefined ? undefined : JSON.stringify(body),
    headers: { 'content-type': 'application/json', ...headers },
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
  });
  const text = await r.body.text();
  try {
    return { status: r.statusCode, body: JSON.parse(text) };
  } catch {
    return { status: r.statusCode, body: text };
  }
}

t.test('helpers: loopback and token checks', async (t) => {
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) t.ok(isLoopback(a), a);
  for (const a of ['10.0.0.1', '::ffff:192.168.1.1', '128.0.0.1', undefined]) t.notOk(isLoopback(a), String(a));
  t.ok(tokenAccepted('own', 'own', []));
  t.ok(tokenAccepted('other', 'own', [{ id: 's2', api: 'x', tokenHash: hashToken('other') }]), "another member's token");
  t.notOk(tokenAccepted('nope', 'own', [{ id: 's2', api: 'x', tokenHash: hashToken('other') }]));
  t.notOk(tokenAccepted(undefined, 'own', []));
});

t.test('admin endpoints, forwarding and timeouts on real servers', async (t) => {
  const c = await FlotillaCluster.start(3, { args: ['--header-timeout', '1s', '--request-read-timeout', '2s'] });
  t.teardown(() => c.stop());
  const tokens = c.members.map((m) => readFileSync(join(m.dataDir, 'admin-token'), 'utf8').trim());
  const bearer = (tok: string) => ({ authorization: `Bearer ${tok}` });

  await t.test('each server has an admin token, mode 0600', async (t) => {
    for (const m of c.members) {
      const st = statSync(join(m.dataDir, 'admin-token'));
      t.equal(st.mode & 0o777, 0o600, `${m.id}: mode 0600`);
    }
    t.equal(new Set(tokens).size, 3, 'one random token per server');
    t.ok(tokens.every((x) => x.length >= 32));
  });

  await t.test('membership changes without a valid token are refused and change nothing', async (t) => {
    const before = (await c.status('s1'))!.members.map((m) => m.id).sort();
    for (const u of c.urls) {
      let r = await call(u, 'POST', '/cluster/members', { id: 'evil', peer: '127.0.0.1:1' });
      t.equal(r.status, 401, `POST without a token on ${u}`);
      t.equal(r.body.reason, 'Unauthorized');
      r = await call(u, 'POST', '/cluster/members', { id: 'evil', peer: '127.0.0.1:1' }, bearer('wrong'));
      t.equal(r.status, 401, 'POST with a wrong token');
      r = await call(u, 'DELETE', '/cluster/members/s3');
      t.equal(r.status, 401, 'DELETE without a token');
      r = await call(u, 'DELETE', '/cluster/members/s3', undefined, { authorization: 'Basic czM6czM=' });
      t.equal(r.status, 401, 'DELETE with another scheme');
    }
    t.same((await c.status('s1'))!.members.map((m) => m.id).sort(), before, 'membership unchanged');
  });

  await t.test('followers forward to the leader from the replicated directory, not from a Lease', async (t) => {
    // A trap where a client points the leader's identity Lease.
    const trapped: string[] = [];
    const trap = createServer((req, res) => {
      trapped.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"members":[]}');
    });
    await new Promise<void>((r) => trap.listen(0, '127.0.0.1', () => r()));
    t.teardown(() => trap.close());
    const trapUrl = `http://127.0.0.1:${(trap.address() as { port: number }).port}`;
    const leader = await c.leader();
    const follower = c.members.find((m) => m.id !== leader)!;
    const leasePath = `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/flotilla-apiserver-${leader}`;
    await waitFor('identity lease', async () => (await call(follower.url, 'GET', leasePath)).status === 200);
    const tamper = await call(c.urls[0], 'PATCH', leasePath, { metadata: { annotations: { 'flotilla.dev/api-url': trapUrl } } }, { 'content-type': 'application/merge-patch+json' });
    t.equal(tamper.status, 200, 'a client can edit the Lease');
    // cluster status shows the real addresses.
    const st = (await c.status(follower.id))!;
    t.equal(st.members.find((m) => m.id === leader)?.api, c.member(leader).url, 'the leader\'s API address comes from the servers');

    // Servers announce their records (API address, token hash) through Raft
    // after they start: another member's token is accepted once every server
    // has applied that member's record, which its status shows as its API address.
    await waitFor('every server knows every member\'s record', async () => {
      for (const m of c.members) {
        const s = await c.status(m.id);
        if (!s || !c.members.every((x) => s.members.find((y) => y.id === x.id)?.api === x.url)) return false;
      }
      return true;
    });
    const s4 = await c.addServer('s4');
    // A token of a member other than the one asked, through a follower.
    const other = c.members.findIndex((m) => m.id !== follower.id);
    const add = await call(follower.url, 'POST', '/cluster/members', { id: 's4', peer: s4.peer }, bearer(tokens[other]));
    t.equal(add.status, 200, `add-member through a follower: ${JSON.stringify(add.body).slice(0, 300)}`);
    t.ok(add.body.members?.some((m: { id: string }) => m.id === 's4'), 'the leader added s4');
    t.same(trapped, [], 'nothing (and no token) went to the address in the Lease');
    await c.waitReady(['s4']);
    await waitFor('s4 announces its API address', async () => (await c.status(follower.id))?.members.find((m) => m.id === 's4')?.api === s4.url);

    // The CLI finds the token in a data directory and removes s4 through a follower.
    const cli = spawnSync(process.execPath, [FLOTILLA_BIN, 'cluster', 'remove-member', '--id', 's4', '--server', follower.url, '--data', c.members[0].dataDir], { encoding: 'utf8', timeout: 120_000 });
    t.equal(cli.status, 0, cli.stderr);
    t.equal(cli.stdout, 'member "s4" removed\n');
    const noToken = spawnSync(process.execPath, [FLOTILLA_BIN, 'cluster', 'remove-member', '--id', 's3', '--server', follower.url], { encoding: 'utf8', timeout: 60_000, cwd: c.dir, env: { ...process.env, FLOTILLA_ADMIN_TOKEN: '' } });
    t.equal(noToken.status, 1);
    t.match(noToken.stderr, /membership changes need the admin token/);
    const badToken = spawnSync(process.execPath, [FLOTILLA_BIN, 'cluster', 'remove-member', '--id', 's3', '--server', follower.url, '--token', 'nope'], { encoding: 'utf8', timeout: 60_000 });
    t.equal(badToken.status, 1);
    t.match(badToken.stderr, /admin token is not valid/);
    t.same(trapped, [], 'still nothing at the trap');
    await c.kill('s4');
  });

  await t.test('slow senders are cut off; watches are not', async (t) => {
    // Headers that never end.
    const headersClosed = await new Promise<string>((resolve) => {
      const s = connect(Number(new URL(c.urls[0]).port), '127.0.0.1', () => s.write('GET /api HTTP/1.1\r\nHost: x\r\n'));
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('close', () => resolve(got));
      s.on('error', () => {});
    });
    t.match(headersClosed, /^(HTTP\/1\.1 408|)/, 'the server closed a connection whose headers never ended');
    // A body that never ends.
    const bodyClosed = await new Promise<string>((resolve) => {
      const s = connect(Number(new URL(c.urls[1]).port), '127.0.0.1', () => {
        s.write('POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"kind":');
      });
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('close', () => resolve(got));
      s.on('error', () => {});
    });
    t.match(bodyClosed, /^(HTTP\/1\.1 408|)/, 'the server closed a connection whose body never ended');
    t.notMatch(bodyClosed, /HTTP\/1\.1 201/, 'nothing was created from half a body');

    // A watch outlives both limits and still delivers.
    const ac = new AbortController();
    const r = await request(`${c.urls[2]}/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=60&labelSelector=slow%3Dwatch`, { signal: ac.signal, bodyTimeout: 0 });
    t.equal(r.statusCode, 200);
    let seen = '';
    const arrived = new Promise<void>((resolve, reject) => {
      r.body.on('data', (d: Buffer) => {
        seen += d.toString();
        if (seen.includes('"after-limits"')) resolve();
      });
      r.body.on('error', (e: Error) => (ac.signal.aborted ? resolve() : reject(e)));
      r.body.on('end', () => reject(new Error(`the watch ended early: ${seen}`)));
    });
    await sleep(3500); // longer than --header-timeout and --request-read-timeout
    const made = await call(c.urls[0], 'POST', '/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'after-limits', labels: { slow: 'watch' } } });
    t.equal(made.status, 201);
    await arrived;
    t.pass('the watch delivered an event after both limits had passed');
    ac.abort();
  });
});
