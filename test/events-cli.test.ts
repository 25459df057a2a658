// `flotilla events` end to end against the EVENTS stream of a real
// nats-server fed by three real servers: as a child process (run as
// bin/commands/events.ts until bin/cli.ts dispatches it) where the process
// matters (configuration, exit codes, --follow and SIGINT, --durable across
// runs), in-process (main() with captured output) for the rest.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { headers } from 'nats';
import t from 'tap';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { connectNats } from '../agents/informer/index.ts';
import { kindByName } from '../api/kinds/index.ts';
import { main } from '../bin/commands/events.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { ROOT, sleep, tempDir, waitFor } from '../harness/procs.ts';

const EVENTS_CMD = join(ROOT, 'bin', 'commands', 'events.ts');
const TSX = import.meta.resolve('tsx');
const CM = kindByName('configmaps')!;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function start(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { child: ChildProcess; result: Promise<Run>; out: () => string } {
  const env = { ...process.env, ...opts.env };
  for (const k of ['FLOTILLA_NATS', 'FLOTILLA_SERVER']) if (!opts.env?.[k]) delete env[k];
  const child = spawn(process.execPath, [`--import=${TSX}`, EVENTS_CMD, ...args], { cwd: opts.cwd ?? tempDir('events-cwd'), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const result = new Promise<Run>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`events ${args.join(' ')} did not finish; stdout: ${out} stderr: ${err}`));
    }, 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
  return { child, result, out: () => out };
}

const run = (args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) => start(args, opts).result;

/** The same command in this process (no process start-up: most cases run this way). */
async function runIn(args: string[]): Promise<Run> {
  let out = '';
  let err = '';
  const before = process.exitCode;
  // A run that does not end by itself within 20 s is stopped and reported.
  const signal = AbortSignal.timeout(20_000);
  await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), stdin: process.stdin }, { signal });
  if (signal.aborted) throw new Error(`events ${args.join(' ')} did not finish within 20 s; stdout: ${out} stderr: ${err}`);
  const code = process.exitCode === before ? 0 : Number(process.exitCode);
  process.exitCode = before;
  return { code, out, err };
}

/** The data lines of table output as [index, time, user, verb, kind, ns/name]. */
function rows(out: string): string[][] {
  return out.trim().split('\n').slice(1).filter(Boolean).map((l) => l.split(/\s{2,}/));
}

t.test('flotilla events', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(3, { args: ['--nats', nats.url, '--events-duplicate-window', '300ms'] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const env = { FLOTILLA_NATS: nats.url };
  const cm = (name: string, ns = 'default') => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data: { k: name } });

  await c.create('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b' } });
  const a = await c.create(resourcePath(CM, 'default'), cm('a'));
  await c.create(resourcePath(CM, 'default'), cm('b'));
  await c.create(resourcePath(CM, 'team-b'), cm('c', 'team-b'));
  const a2 = await c.patch(`${resourcePath(CM, 'default')}/a`, { data: { k: 'a2' } }, 'application/merge-patch+json');
  await c.delete(`${resourcePath(CM, 'default')}/b`);
  const lastRv = Number(a2.metadata!.resourceVersion) + 1; // the delete is the last write
  const nc = await connectNats(nats.url, 'events-cli-test');
  t.teardown(() => nc.close());
  const jsm = await nc.jetstreamManager();
  await waitFor('all writes on the stream', async () => {
    const info = await jsm.streams.info('EVENTS');
    const m = await jsm.streams.getMessage('EVENTS', { seq: info.state.last_seq });
    return Number(m.header.get('Nats-Msg-Id')) >= lastRv;
  }, 10_000);

  await t.test('prints every event, aligned, in index order, and exits', async (t) => {
    const r = await run([], { env }); // a process, NATS from $FLOTILLA_NATS
    t.equal(r.code, 0, r.err);
    const lines = r.out.trimEnd().split('\n');
    t.match(lines[0], /^INDEX\s+TIME\s+USER\s+VERB\s+KIND\s+NAMESPACE\/NAME$/);
    const col = (l: string, word: string) => l.indexOf(word);
    for (const l of lines.slice(1)) t.equal(l.indexOf(l.split(/\s{2,}/)[5]), col(lines[0], 'NAMESPACE/NAME'), `aligned: ${l}`);
    const data = rows(r.out);
    const idx = data.map((d) => Number(d[0]));
    t.same(idx, [...idx].sort((x, y) => x - y), 'in index order');
    t.ok(data.some((d) => d[4] === 'Namespace' && d[5] === 'default' && d[2] === 'system:apiserver'), 'system writes are there');
    const ours = data.filter((d) => d[4] === 'ConfigMap').map((d) => `${d[3]} ${d[5]}`);
    t.same(ours, ['create default/a', 'create default/b', 'create team-b/c', 'patch default/a', 'delete default/b']);
    t.match(data.find((d) => d[5] === 'default/a')![1], /^\d{4}-\d\d-\d\dT/, 'TIME is the write\'s timestamp');
    t.equal(data.find((d) => d[5] === 'default/a')![0], a.metadata!.resourceVersion, 'INDEX is the resourceVersion');
  });

  await t.test('filters by kind, namespace and user; starts after an index or a time', async (t) => {
    let r = await runIn(['--kind', 'cm', '-n', 'team-b', '--nats', nats.url]);
    t.same(rows(r.out).map((d) => d[5]), ['team-b/c'], '--kind cm -n team-b');
    r = await runIn(['--kind', 'namespaces', '--nats', nats.url]);
    t.ok(rows(r.out).length >= 5 && rows(r.out).every((d) => d[4] === 'Namespace'), '--kind namespaces (cluster-scoped)');
    r = await runIn(['--kind', 'leases.coordination.k8s.io', '-n', 'kube-system', '--nats', nats.url]);
    t.ok(rows(r.out).length >= 3 && rows(r.out).every((d) => d[4] === 'Lease'), 'a kind of a named group');
    r = await runIn(['--user', 'system:anonymous', '--nats', nats.url]);
    t.ok(rows(r.out).every((d) => d[2] === 'system:anonymous') && rows(r.out).length === 6, '--user');
    r = await runIn(['--since', a.metadata!.resourceVersion!, '--kind', 'configmaps', '--nats', nats.url]);
    t.same(rows(r.out).map((d) => `${d[3]} ${d[5]}`), ['create default/b', 'create team-b/c', 'patch default/a', 'delete default/b'], '--since INDEX: strictly after it');
    r = await runIn(['--since', '10m', '--kind', 'cm', '--nats', nats.url]);
    t.equal(rows(r.out).length, 5, '--since 10m');
    r = await runIn(['--since', '2999-01-01T00:00:00Z', '--nats', nats.url]);
    t.equal(r.out, '', 'nothing after a future time');
    t.match(r.err, /No events found/);
    r = await runIn(['--since', String(lastRv + 1000), '--nats', nats.url]);
    t.equal(r.out, '', 'nothing after a future index');
  });

  await t.test('-o json: one event per line with the object parsed', async (t) => {
    const r = await runIn(['-o', 'json', '--kind', 'cm', '-n', 'default', '--nats', nats.url]);
    t.equal(r.code, 0, r.err);
    const evs = r.out.trim().split('\n').map((l) => JSON.parse(l));
    t.same(evs.map((e) => e.type), ['ADDED', 'ADDED', 'MODIFIED', 'DELETED']);
    t.same(evs[2].object.data, { k: 'a2' }, 'object is parsed JSON');
    t.equal(evs[2].index, Number(a2.metadata!.resourceVersion));
    t.match(evs[0], { group: '', version: 'v1', kind: 'ConfigMap', resource: 'configmaps', namespace: 'default', name: 'a', user: 'system:anonymous', verb: 'create' });
  });

  await t.test('--durable resumes after what the previous run printed', async (t) => {
    // Runs 1 and 3 are processes of their own: what one acknowledged, the next one skips.
    let r = await run(['--durable', 'auditor', '--kind', 'cm'], { env });
    t.equal(r.code, 0, r.err);
    t.equal(rows(r.out).length, 5, 'first run: everything');
    r = await runIn(['--durable', 'auditor', '--kind', 'cm', '--nats', nats.url]);
    t.equal(r.code, 0);
    t.equal(r.out, '', 'second run: nothing new');
    const d = await c.create(resourcePath(CM, 'team-b'), cm('d', 'team-b'));
    await waitFor('d on the stream', async () => {
      const info = await jsm.streams.info('EVENTS');
      const m = await jsm.streams.getMessage('EVENTS', { seq: info.state.last_seq });
      return Number(m.header.get('Nats-Msg-Id')) >= Number(d.metadata!.resourceVersion);
    }, 10_000);
    r = await run(['--durable', 'auditor', '--kind', 'cm', '-o', 'json'], { env });
    t.same(r.out.trim().split('\n').map((l) => JSON.parse(l).name), ['d'], 'third run: only the new event');
    const ci = await jsm.consumers.info('EVENTS', 'auditor');
    t.equal(ci.num_ack_pending, 0, 'everything printed was acknowledged');
    t.equal(ci.num_pending, 0);
    r = await runIn(['--durable', 'auditor', '--kind', 'pods', '--nats', nats.url]);
    t.equal(r.code, 1, 'another filter on the same durable is refused');
    t.match(r.err, /durable consumer "auditor" reads events\.core\.configmaps/);
    r = await runIn(['--durable', 'from-index', '--since', d.metadata!.resourceVersion!, '--nats', nats.url]);
    t.equal(r.out, '', 'a new durable starts after --since');
  });

  await t.test('--follow prints new events as they are written until interrupted', async (t) => {
    const f = start(['--follow', '--kind', 'cm', '-n', 'default', '--since', a2.metadata!.resourceVersion!], { env });
    await waitFor('the backlog', () => f.out().includes('delete'), 10_000);
    const e = await c.create(resourcePath(CM, 'default'), cm('e'));
    await waitFor('the new event', () => f.out().includes('default/e'), 10_000);
    const last = rows(f.out()).at(-1)!;
    t.same([last[0], last[3], last[5]], [e.metadata!.resourceVersion, 'create', 'default/e']);
    f.child.kill('SIGINT');
    const r = await f.result;
    t.equal(r.code, 0, 'exits cleanly on SIGINT');
    t.same(rows(r.out).map((d) => d[5]), ['default/b', 'default/e']);
  });

  await t.test('finds NATS in ./.flotilla/cluster.json; says how to configure it otherwise', async (t) => {
    const dir = tempDir('events-cwd');
    mkdirSync(join(dir, '.flotilla'));
    writeFileSync(join(dir, '.flotilla', 'cluster.json'), JSON.stringify({ servers: [{ id: 's1', api: cluster.members[0].api }], nats: nats.url }));
    const [fromFile, none, badKind, badSince] = await Promise.all([
      run(['--kind', 'cm', '-n', 'team-b'], { cwd: dir }),
      run([]),
      run(['--nats', nats.url, '--kind', 'nope']),
      run(['--nats', nats.url, '--since', 'yesterday']),
    ]);
    t.equal(fromFile.code, 0, fromFile.err);
    t.same(rows(fromFile.out).map((d) => d[5]), ['team-b/c', 'team-b/d']);
    t.equal(none.code, 1);
    t.match(none.err, /no NATS server configured: pass --nats/);
    t.equal(badKind.code, 1);
    t.match(badKind.err, /doesn't have a resource type "nope"/);
    t.equal(badSince.code, 1);
    t.match(badSince.err, /invalid --since "yesterday"/);
  });

  await t.test('a message that does not decode is reported and skipped', async (t) => {
    await sleep(400); // past the duplicate window, so the publisher's chain holds (see informer.test.ts)
    const info = await jsm.streams.info('EVENTS');
    const last = await jsm.streams.getMessage('EVENTS', { seq: info.state.last_seq });
    const h = headers();
    h.set('Nats-Msg-Id', last.header.get('Nats-Msg-Id'));
    const ack = await nc.jetstream().publish('events.core.configmaps.default.x', new Uint8Array([0xff, 0xfe, 0x00]), { headers: h });
    const f = await c.create(resourcePath(CM, 'default'), cm('f'));
    await waitFor('f on the stream', async () => {
      const i = await jsm.streams.info('EVENTS');
      const m = await jsm.streams.getMessage('EVENTS', { seq: i.state.last_seq });
      return Number(m.header.get('Nats-Msg-Id')) >= Number(f.metadata!.resourceVersion);
    }, 10_000);
    const r = await runIn(['--kind', 'cm', '-n', 'default', '--nats', nats.url]);
    t.equal(r.code, 0);
    t.match(r.err, new RegExp(`warning: skipping message ${ack.seq} on events\\.core\\.configmaps\\.default\\.x`));
    t.equal(rows(r.out).at(-1)![5], 'default/f', 'events after it are printed');
  });
});
