// A write whose outcome is unknown (its leader died with it in flight) is
// answered 504 Timeout and never replayed by the shared client; 503 stays
// "not applied, safe to retry". Checked with real servers whose leader is
// killed again and again under a stream of generateName creates: no create is
// ever applied twice.
import { createServer } from 'node:http';
import t from 'tap';
import { ApiClient, ApiClientError } from '../agents/client/api.ts';
import { proposalError } from '../apiserver/registry.ts';
import { ApiError } from '../apiserver/errors.ts';
import { RaftError } from '../raft/types.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { sleep, waitFor } from '../harness/procs.ts';

const CM = '/api/v1/namespaces/default/configmaps';

t.test('proposal failures: unknown outcome is 504 Timeout, not-applied is 503', async (t) => {
  const unknown = [
    new RaftError('timeout', 'raft: proposal not applied in time (its outcome is unknown)'),
    new RaftError('unknown-outcome', 'raft: leader s1 lost; the proposal\'s outcome is unknown'),
    new RaftError('unknown-outcome', 'raft: outcome unknown (replaced by a snapshot)'),
    new RaftError('stopped', 'raft: node stopped'),
  ];
  for (const e of unknown) {
    const a = proposalError(e) as ApiError;
    t.equal(a.code, 504, e.message);
    t.equal(a.reason, 'Timeout');
    t.equal(a.message, 'the server was unable to return a response in the time allotted, but may still be processing the request');
    t.notOk(a.details?.retryAfterSeconds, 'no Retry-After (client-go would replay)');
  }
  const lost = proposalError(new RaftError('superseded', 'raft: proposal lost in a leader change; retry')) as ApiError;
  t.equal(lost.code, 503, 'a proposal overwritten by another entry was not applied: 503');
});

t.test('the shared client replays a 503 but never a write answered 504', async (t) => {
  const seen: string[] = [];
  let answer = 504;
  const srv = createServer((req, res) => {
    seen.push(req.method!);
    req.resume();
    const code = seen.length === 1 ? answer : 201;
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(code === 201 ? { kind: 'ConfigMap', metadata: { name: 'x' } } : { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason: code === 504 ? 'Timeout' : 'ServiceUnavailable', message: 'm' }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => srv.close());
  const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
  const c = new ApiClient([url], { deadlineMs: 5000, backoffMs: 1 });
  t.teardown(() => c.close());
  for (const method of ['POST', 'PATCH', 'PUT', 'DELETE']) {
    seen.length = 0;
    answer = 504;
    const r = await c.raw(method, `${CM}/x`, { body: {} });
    t.equal(r.status, 504, `${method}: the 504 reaches the caller`);
    t.same(seen, [method], `${method} answered 504 is sent once`);
  }
  seen.length = 0;
  const g = await c.raw('GET', `${CM}/x`);
  t.equal(g.status, 201);
  t.same(seen, ['GET', 'GET'], 'a GET answered 504 is retried');
  seen.length = 0;
  answer = 503;
  const p = await c.raw('POST', CM, { body: {} });
  t.equal(p.status, 201);
  t.same(seen, ['POST', 'POST'], 'a POST answered 503 (not applied) is retried');
});

t.test('generateName creates under repeated leader kills are never applied twice', async (t) => {
  const c = await FlotillaCluster.start(3);
  t.teardown(() => c.stop());
  const acked = new Set<string>();
  const unknown = new Set<string>();
  const otherErrors: string[] = [];
  let stop = false;
  let n = 0;
  let collisions = 0;
  const worker = async (w: number) => {
    // Each worker prefers another server, so that many writes are forwarded by followers.
    const client = new ApiClient(c.urls.slice(w % 3).concat(c.urls.slice(0, w % 3)), { deadlineMs: 20_000, attemptTimeoutMs: 10_000, backoffMs: 20 });
    try {
      while (!stop) {
        const token = `w${w}-${n++}`;
        try {
          await client.create(CM, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { generateName: 'dup-', labels: { test: 'dup' } }, data: { token } });
          acked.add(token);
        } catch (e) {
          // A generated name that happens to be taken (27^5 suffixes, thousands of creates): not
          // applied, as in Kubernetes; the token must then not be stored (checked below).
          if (e instanceof ApiClientError && e.status.reason === 'AlreadyExists') {
            collisions++;
            continue;
          }
          // Outcome unknown: a 504, or a connection that broke mid-request. Either may have been applied once.
          unknown.add(token);
          if (e instanceof ApiClientError && e.status.code !== 504 && e.status.code !== 503) otherErrors.push(`${e.status.code} ${e.status.message}`);
        }
      }
    } finally {
      await client.close();
    }
  };
  const workers = Array.from({ length: 6 }, (_, i) => worker(i));
  for (let round = 0; round < 5; round++) {
    await sleep(700);
    const leader = await c.leader();
    await c.kill(leader);
    await c.leader([leader]);
    await sleep(300);
    c.startMember(leader);
    await c.waitReady();
  }
  await sleep(500);
  stop = true;
  await Promise.all(workers);

  const reader = new ApiClient(c.urls, { deadlineMs: 30_000 });
  t.teardown(() => reader.close());
  const list = await reader.list<{ data: { token: string } }>(CM, { labelSelector: 'test=dup' });
  const count = new Map<string, number>();
  for (const o of list.items) count.set(o.data.token, (count.get(o.data.token) ?? 0) + 1);
  const dups = [...count].filter(([, k]) => k > 1);
  t.same(dups, [], 'no create was applied twice');
  t.same([...acked].filter((tok) => count.get(tok) !== 1), [], 'every acknowledged create is stored exactly once');
  t.same([...count.keys()].filter((tok) => !acked.has(tok) && !unknown.has(tok)), [], 'nothing stored that was refused or never sent');
  t.same(otherErrors, [], 'no other failures');
  t.ok(acked.size > 20, `writes went on throughout (${acked.size} acknowledged, ${unknown.size} unknown)`);
  t.comment(`${acked.size} acknowledged, ${unknown.size} with unknown outcome, ${collisions} generated-name collisions, ${list.items.length} stored`);
});
