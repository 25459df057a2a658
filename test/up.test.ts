// `flotilla up` as a user meets it, in a fresh directory: it comes up
// (servers, NATS, a controller manager, a scheduler, hollow nodes), writes
// cluster.json and a kubeconfig the real kubectl uses through the stable
// balanced address; a server killed with SIGKILL is restarted with its new
// pid in cluster.json while kubectl keeps working; `flotilla cluster status`
// lists every component; SIGTERM stops every child; a second `up` on the same
// directory resumes the same data; `flotilla down` stops a detached cluster.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'nats';
import { Agent, request } from 'undici';
import t from 'tap';
import { natsServerOptions } from '../api/nats-url.ts';
import { kubectlMissing, runKubectl } from '../harness/kubectl.ts';
import { FLOTILLA_BIN, freePort, runFlotilla, waitFor } from '../harness/procs.ts';

interface ClusterFile {
  api: string;
  up: number;
  kubeconfig: string;
  servers: { id: string; pid: number; api: string; data: string }[];
  natsServers: { pid: number }[];
  controllers: { pid: number }[];
  schedulers: { pid: number }[];
  agents: { pid: number; count?: number }[];
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

// The caller's $KUBECONFIG must not pick the identity: cluster.json's kubeconfig does.
const flotilla = (cwd: string, args: string[]) => runFlotilla(cwd, args, { ...process.env, KUBECONFIG: '' });

t.test('flotilla up: comes up, survives a server kill, stops on SIGTERM, resumes its data, flotilla down', async (t) => {
  if (kubectlMissing(t)) return;
  const cwd = mkdtempSync(join(tmpdir(), 'flotilla-up-'));
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }));
  // A base port whose neighbourhood (+1…+3, +101…, +201, +301, +321) is unlikely to be taken.
  const base = 20_000 + ((await freePort()) % 20_000);
  const args = ['up', '--base-port', String(base), '--nats', '1', '--controllers', '1', '--schedulers', '1', '--dns', 'none', '--ingress', 'none', '--runtime', 'sim', '--nodes', '2'];
  const cluster = () => JSON.parse(readFileSync(join(cwd, '.flotilla', 'cluster.json'), 'utf8')) as ClusterFile;
  let up: ChildProcess | undefined;
  let out = '';
  const start = () => {
    out = '';
    up = spawn(process.execPath, [FLOTILLA_BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    up.stdout!.on('data', (d) => (out += d));
    up.stderr!.on('data', (d) => (out += d));
    return up;
  };
  t.teardown(async () => {
    if (up && up.exitCode === null) up.kill('SIGTERM');
    await flotilla(cwd, ['down']);
  });
  const kubectl = (...a: string[]) => runKubectl(join(cwd, '.flotilla', 'kubeconfig'), join(cwd, 'kube-cache'), a);

  start();
  await waitFor('up prints its summary', () => out.includes('Flotilla is up'), 120_000, 200);
  const c = cluster();
  t.equal(c.api, `https://127.0.0.1:${base}`, 'cluster.json names the stable API address (HTTPS by default)');
  t.ok(c.servers.every((s) => s.api.startsWith('https://127.0.0.1:')), 'and each server\'s https:// address');
  const caBefore = readFileSync(join(cwd, '.flotilla', 'pki', 'ca.crt'), 'utf8');
  t.equal(statSync(join(cwd, '.flotilla', 'pki', 'ca.key')).mode & 0o777, 0o600, 'the CA key is owner-only');
  t.equal(c.servers.length, 3, 'three servers');
  t.same(c.agents.map((a) => a.count), [2], 'one agent entry with its hollow-node count');
  const nodes = await kubectl('get', 'nodes', '-o', 'name');
  t.same(nodes.out.trim().split('\n').sort(), ['node/hollow-0', 'node/hollow-1'], 'kubectl sees the nodes through the kubeconfig');
  t.equal((await kubectl('create', 'configmap', 'kept', '--from-literal=a=1')).code, 0, 'kubectl creates an object');

  // NATS admits only the cluster's users, each with its role's rights (bin/nats-auth.ts).
  const natsUrl = (cluster() as unknown as { nats: string }).nats;
  t.match(natsUrl, /^nats:\/\/flotilla-consumer:[^@]+@127\.0\.0\.1:\d+$/, 'cluster.json names NATS with the consumer user');
  t.equal(statSync(join(cwd, '.flotilla', 'cluster.json')).mode & 0o777, 0o600, 'cluster.json (it holds a password) is owner-only');
  const { servers: [natsServer] } = natsServerOptions(natsUrl);
  await t.rejects(connect({ servers: natsServer, timeout: 3000, maxReconnectAttempts: 0 }), /Authorization Violation/i, 'an anonymous NATS client is refused');
  const consumer = await connect({ ...natsServerOptions(natsUrl), timeout: 3000 });
  const forged = consumer.jetstream({ timeout: 3000 }).publish('events.v1.configmaps.default.kept', new Uint8Array([1]));
  await t.rejects(forged, /permission|timeout|no responders/i, 'the consumer user cannot publish on events.>');
  const jsm = await consumer.jetstreamManager();
  t.ok((await jsm.streams.info('EVENTS')).state.messages > 0, 'but reads the stream');
  await t.rejects(jsm.streams.delete('EVENTS'), /permission|timeout/i, 'and cannot delete it');
  await consumer.close().catch(() => {});
  const events = await flotilla(cwd, ['events', '--since', '0', '--kind', 'configmaps']);
  t.equal(events.code, 0, `flotilla events reads through cluster.json's NATS user: ${events.err}`);
  t.match(events.out, /kept/, 'and prints the write');

  // kill -9 one server: the balancer routes around it, up restarts it and records its pid.
  const victim = c.servers[0]!;
  process.kill(victim.pid, 'SIGKILL');
  const get = await kubectl('get', 'configmap', 'kept', '-o', 'jsonpath={.data.a}');
  t.equal(get.out, '1', 'kubectl keeps working while a server is down');
  const restarted = await waitFor('the server restarted', () => {
    const pid = cluster().servers.find((s) => s.id === victim.id)!.pid;
    return pid !== victim.pid && alive(pid) ? pid : undefined;
  }, 60_000, 200);
  t.ok(restarted, `server ${victim.id} runs again as pid ${restarted}`);
  t.match(out, new RegExp(`${victim.id}.*(exited|died|killed)`, 'i'), 'up reported the dead child');

  const status = await flotilla(cwd, ['cluster', 'status']);
  t.equal(status.code, 0, status.err);
  for (const what of ['controllers', 'scheduler', 'agent']) t.match(status.out, new RegExp(what, 'i'), `cluster status lists the ${what}`);

  // Membership changes reach the leader from any server: followers forward them over HTTPS, trusting the cluster CA.
  const ca = new Agent({ connect: { ca: readFileSync(join(cwd, '.flotilla', 'pki', 'ca.crt'), 'utf8') } });
  const adminToken = readFileSync(join(c.servers[1]!.data, 'admin-token'), 'utf8').trim();
  for (const s of cluster().servers) {
    // The server just restarted answers 503 "retry" until it has heard from the leader (over a new TLS link): ask again then.
    const { status, body } = await waitFor(`${s.id} knows the leader`, async () => {
      const r = await request(`${s.api}/cluster/members/no-such-member`, { method: 'DELETE', dispatcher: ca, headers: { authorization: `Bearer ${adminToken}` } });
      const b = await r.body.json() as { role?: string; message?: string };
      return r.statusCode === 503 && /retry/.test(b.message ?? '') ? undefined : { status: r.statusCode, body: b };
    }, 20_000, 250);
    t.equal(status, 200, `DELETE /cluster/members on ${s.id} answered by the leader: ${body.message ?? ''}`);
    t.equal(body.role, 'leader');
  }
  await ca.close();

  // SIGTERM stops every child.
  const children = (() => {
    const f = cluster();
    return [...f.servers, ...f.natsServers, ...f.controllers, ...f.schedulers, ...f.agents].map((p) => p.pid);
  })();
  up!.kill('SIGTERM');
  await new Promise((r) => up!.once('exit', r));
  await waitFor('every child gone', () => children.every((pid) => !alive(pid)), 20_000, 100);
  t.pass(`SIGTERM to up stopped all ${children.length} children`);

  // The same directory again, detached this time: the data is still there; then flotilla down.
  const detached = await flotilla(cwd, [...args, '--detach']);
  t.equal(detached.code, 0, detached.err);
  t.match(detached.out, /Flotilla is up/, 'up --detach returns once the cluster is up');
  const again = await kubectl('get', 'configmap', 'kept', '-o', 'jsonpath={.data.a}');
  t.equal(again.out, '1', 'a second up on the same directory resumes the same data');
  t.equal(readFileSync(join(cwd, '.flotilla', 'pki', 'ca.crt'), 'utf8'), caBefore, 'and keeps the CA it made the first time');
  const upPid = cluster().up;
  const down = await flotilla(cwd, ['down']);
  t.equal(down.code, 0, down.err);
  await waitFor('the detached up gone', () => !alive(upPid), 20_000, 100);
  t.pass('flotilla down stopped the detached cluster');

  // Clear refusals, before anything starts: another shape on the same data, a port taken.
  const shape = await flotilla(cwd, [...args.filter((a) => a !== '--detach'), '--servers', '5']);
  t.equal(shape.code, 1, 'a different number of servers on the same directory is refused');
  t.match(shape.err, /holds a cluster of 3 server\(s\) and 1 NATS server\(s\); this run asks for 5 and 1\. Start it with --servers 3 --nats 1/);
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(base + 2, '127.0.0.1', () => r()));
  const busy = await flotilla(cwd, args);
  blocker.close();
  t.equal(busy.code, 1, 'a taken port is refused');
  t.match(busy.err, new RegExp(`cannot start: 127\\.0\\.0\\.1:${base + 2} \\(EADDRINUSE\\) is taken by another process`));
});
