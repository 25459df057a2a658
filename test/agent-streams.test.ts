// kubectl attach and kubectl port-forward with the real kubectl, through a
// real API server to a real node agent: attach streams the running
// container's output and writes into its stdin (kept open without
// stdinOnce, closed after the first session with it); port-forward carries
// HTTP to podIP:port over SPDY tunnelled in a WebSocket (kubectl's default)
// and over a plain SPDY upgrade (its fallback), and a port nobody listens on
// gives kubectl Kubernetes' error. Forged WebSocket and SPDY frames crash
// neither the API server nor the agent.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import t from 'tap';
import { request } from 'undici';
import { ApiClient, resourcePath } from '../agents/client/api.ts';
import { NodeIpamController } from '../agents/controllers/nodeipam/controller.ts';
import { RootCAPublisher } from '../agents/controllers/serviceaccount/rootca.ts';
import type { Pod } from '../agents/informer/types.ts';
import { kindByName } from '../api/kinds/index.ts';
import { AgentProcess } from '../harness/agent.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { waitFor } from '../harness/procs.ts';
import { runControllers } from './support/controllers.ts';

const PODS = kindByName('pods')!;
const octet = 30 + Math.floor(Math.random() * 200);
const ADDRESS = `127.0.${octet}.12`;
const NODE = `streams-${octet}`;

// Prints a tick every 100 ms; answers each stdin line in upper case; an HTTP server echoing request bodies.
const TALKER = `
let n = 0;
setInterval(() => console.log('tick ' + n++), 100);
process.stdin.on('data', (d) => console.log('got: ' + String(d).trim().toUpperCase()));
process.stdin.on('end', () => console.log('stdin ended'));
`;
const ECHO = `
require('http').createServer((q, s) => { const b = []; q.on('data', (d) => b.push(d)); q.on('end', () => s.end(b.length ? Buffer.concat(b) : 'hello from ' + process.env.HOSTNAME)); }).listen(+process.env.PORT, process.env.POD_IP);
`;

t.test('attach and port-forward', { skip: kubectlMissing(t) ?? false }, async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const ipam = await runControllers(c, nats.url, [(ctx) => new NodeIpamController(ctx), (ctx) => new RootCAPublisher(ctx)], { clusterCIDR: `127.${100 + (octet % 100)}.0.0/16` });
  t.teardown(() => ipam.stop());
  const agent = await AgentProcess.start({ servers: cluster.urls, name: NODE, address: ADDRESS, nats: nats.url, args: ['--service-proxy', 'false'] });
  t.teardown(() => agent.stop());
  const path = resourcePath(PODS, 'default');
  const running = (name: string) => waitFor(`${name} running and ready`, async () => {
    const p = await c.get<Pod>(`${path}/${name}`);
    return p.status?.phase === 'Running' && p.status.conditions?.find((x) => x.type === 'Ready')?.status === 'True' ? p : undefined;
  }, 30_000, 100);
  const children: ChildProcess[] = [];
  t.teardown(() => children.forEach((p) => p.kill('SIGKILL')));
  /** kubectl running in the background, its output collected. */
  const bg = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const p = spawn('kubectl', ['--kubeconfig', cluster.kubeconfig, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    children.push(p);
    const o = { p, out: '', err: '', exited: new Promise<number | null>((r) => p.once('exit', (code) => r(code))) };
    p.stdout.on('data', (d) => (o.out += d));
    p.stderr.on('data', (d) => (o.err += d));
    return o;
  };
  const healthy = async () => {
    for (const u of [...cluster.urls, `http://${ADDRESS}:${agent.port}`]) {
      const r = await request(`${u}/healthz`);
      await r.body.dump();
      if (r.statusCode !== 200) return false;
    }
    return true;
  };

  await c.create(path, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'talker' }, spec: { nodeName: NODE, terminationGracePeriodSeconds: 1, containers: [{ name: 'talker', image: 'node:20', command: ['node', '-e', TALKER], stdin: true }] } });
  await c.create(path, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'once' }, spec: { nodeName: NODE, restartPolicy: 'Never', terminationGracePeriodSeconds: 1, containers: [{ name: 'once', image: 'busybox', command: ['sh', '-c', 'cat; echo done-after-eof'], stdin: true, stdinOnce: true }] } });
  await c.create(path, { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web' }, spec: { nodeName: NODE, terminationGracePeriodSeconds: 1, containers: [{ name: 'web', image: 'node:20', command: ['node', '-e', ECHO], ports: [{ containerPort: 8080 }] }] } });
  await running('talker');
  await running('once');
  const web = await running('web');

  await t.test('kubectl attach streams the running container\'s output from now on', async (t) => {
    // What it has written so far, through the log.
    const before = await waitFor('a few ticks in the log', async () => {
      const r = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, 'logs', 'talker'], { encoding: 'utf8', timeout: 30_000 });
      const ticks = [...r.stdout.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
      return ticks.length >= 3 ? ticks[ticks.length - 1] : undefined;
    }, 20_000, 200);
    const a = bg(['attach', 'talker']);
    await waitFor('ticks through attach', async () => (/tick \d+\n[\s\S]*tick \d+\n/.test(a.out) ? true : undefined), 20_000, 50);
    a.p.kill('SIGINT');
    await a.exited;
    const first = Number(/tick (\d+)/.exec(a.out)![1]);
    t.ok(first > before, `output starts where the container is now (tick ${first}, after tick ${before} in the log), not at its beginning`);
    t.match(a.err, /If you don't see a command prompt, try pressing enter/);
  });

  await t.test('kubectl attach -i writes to its stdin, which stays open without stdinOnce', async (t) => {
    for (const word of ['hello', 'again']) {
      const a = bg(['attach', '-i', 'talker']);
      // Written once the session is up (kubectl prints its prompt line first).
      await waitFor('the attach session', async () => (/tick/.test(a.out) ? true : undefined), 20_000, 50);
      a.p.stdin!.write(`${word}\n`);
      await waitFor(`the answer to ${word}`, async () => (a.out.includes(`got: ${word.toUpperCase()}`) ? true : undefined), 20_000, 50);
      t.notMatch(a.out, /stdin ended/, 'no EOF for the container');
      a.p.kill('SIGINT');
      await a.exited;
    }
    const p = await c.get<Pod>(`${path}/talker`);
    t.equal(p.status?.containerStatuses?.[0]?.restartCount, 0, 'the same process answered both sessions');
  });

  await t.test('kubectl attach -i with stdinOnce: EOF after the first session, the output to its end, exit 0', async (t) => {
    const r = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, 'attach', '-i', 'once'], { input: 'line one\nline two\n', encoding: 'utf8', timeout: 30_000 });
    t.equal(r.status, 0, `kubectl attach exits 0 when the container ends: ${r.stderr}`);
    t.match(r.stdout, /line one\nline two\ndone-after-eof/);
    const p = await waitFor('once Succeeded', async () => {
      const x = await c.get<Pod>(`${path}/once`);
      return x.status?.phase === 'Succeeded' ? x : undefined;
    }, 20_000, 100);
    t.equal(p.status?.phase, 'Succeeded');
    const again = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, 'attach', 'once'], { encoding: 'utf8', timeout: 30_000 });
    t.not(again.status, 0);
    t.match(again.stderr, /cannot attach a container in a completed pod; current phase is Succeeded/);
  });

  await t.test('kubectl attach to a container the pod does not have', async (t) => {
    const r = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, 'attach', 'talker', '-c', 'nope'], { encoding: 'utf8', timeout: 30_000 });
    t.not(r.status, 0);
    t.match(r.stderr, /nope/);
  });

  const forward = async (remote: number, env: NodeJS.ProcessEnv = {}) => {
    const pf = bg(['port-forward', 'pod/web', `:${remote}`], env);
    const m = await waitFor('port-forward listening', async () => /Forwarding from 127\.0\.0\.1:(\d+)/.exec(pf.out) ?? undefined, 20_000, 50);
    return { pf, local: Number(m[1]) };
  };

  for (const [label, env] of [['WebSocket (SPDY tunnelled)', {}], ['SPDY upgrade (kubectl\'s fallback)', { KUBECTL_PORT_FORWARD_WEBSOCKETS: 'false' }]] as const) {
    await t.test(`kubectl port-forward over ${label} reaches podIP:port`, async (t) => {
      const { pf, local } = await forward(8080, env);
      const r = await request(`http://127.0.0.1:${local}/`);
      t.equal(await r.body.text(), 'hello from web');
      // Several connections at once, each its own pair of streams, and a body larger than a frame.
      const big = randomBytes(3 * 2 ** 20);
      const answers = await Promise.all([0, 1, 2, 3].map(async (i) => {
        const body = i === 0 ? big : Buffer.from(`request ${i}`);
        const x = await request(`http://127.0.0.1:${local}/`, { method: 'POST', body });
        return { sent: body, got: Buffer.from(await x.body.arrayBuffer()) };
      }));
      for (const a of answers) t.ok(a.sent.equals(a.got), `${a.sent.length} bytes echoed intact`);
      pf.p.kill('SIGINT');
      await pf.exited;
      t.notMatch(pf.err, /error/i, pf.err);
    });
  }

  await t.test('kubectl port-forward to a port nobody listens on: Kubernetes\' error, nothing crashes', async (t) => {
    const { pf, local } = await forward(9999);
    const failed = await request(`http://127.0.0.1:${local}/`).then((r) => r.body.text().then(() => false), () => true);
    t.ok(failed, 'the local connection is closed without an answer');
    await waitFor('kubectl reports the error', async () => (/an error occurred forwarding \d+ -> 9999/.test(pf.err) ? true : undefined), 20_000, 50);
    t.match(pf.err, new RegExp(`error forwarding port 9999 to pod web, uid ${web.metadata.uid}: failed to connect to ${web.status!.podIP!.replace(/\./g, '\\.')}:9999`));
    pf.p.kill('SIGINT');
    await pf.exited;
    t.ok(await healthy(), 'the API server and the agent are healthy');
  });

  await t.test('forged frames crash neither the API server nor the agent', async (t) => {
    const upgrade = (path: string, protocol: string) => new Promise<import('node:net').Socket>((resolve, reject) => {
      const u = new URL(cluster.urls[0]);
      const s = connect({ host: u.hostname, port: Number(u.port) });
      const key = randomBytes(16).toString('base64');
      s.once('error', reject);
      s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ${protocol}\r\n\r\n`);
      let head = '';
      const onData = (d: Buffer) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        s.off('data', onData);
        const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        if (!head.startsWith('HTTP/1.1 101') || !head.includes(accept)) return reject(new Error(head));
        resolve(s);
      };
      s.on('data', onData);
    });
    /** A masked client frame. */
    const frame = (payload: Buffer, opcode = 2) => {
      const mask = randomBytes(4);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
      const len = payload.length;
      const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 255]);
      return Buffer.concat([head, mask, masked]);
    };
    const closed = (s: import('node:net').Socket) => new Promise<void>((r) => {
      s.on('data', () => {});
      s.once('close', () => r());
      setTimeout(() => { s.destroy(); r(); }, 5000).unref();
    });
    const pfPath = '/api/v1/namespaces/default/pods/web/portforward';
    const spdy = 'SPDY/3.1+portforward.k8s.io';
    // SPDY: a frame of another version; a SYN_STREAM whose header block is not zlib; a truncated SYN_STREAM.
    const cases: Buffer[] = [
      Buffer.from([0x80, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]),
      Buffer.concat([Buffer.from([0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 20]), Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), randomBytes(10)]),
      Buffer.from([0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00]),
      Buffer.from([0x80, 0x03, 0x00, 0x06, 0x00, 0x00, 0x00, 0x03, 1, 2, 3]),
      Buffer.concat([Buffer.from([0x00, 0x00, 0x00, 0x07, 0x01, 0x00, 0x00, 0x04]), Buffer.from('data')]),
    ];
    for (const bytes of cases) {
      const s = await upgrade(pfPath, spdy);
      s.write(frame(bytes));
      await closed(s);
    }
    // WebSocket: an unmasked frame; a frame claiming 2^62 bytes; garbage.
    for (const bytes of [Buffer.from([0x82, 0x03, 1, 2, 3]), Buffer.from([0x82, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]), randomBytes(64)]) {
      const s = await upgrade('/api/v1/namespaces/default/pods/talker/attach?stdout=true&stdin=true', 'v5.channel.k8s.io');
      s.write(bytes);
      await closed(s);
    }
    // exec, attach and port-forward stop at the API server for a request that is no upgrade of theirs.
    const plain = await request(`${cluster.urls[0]}${pfPath}`, { method: 'POST' });
    t.equal(plain.statusCode, 400);
    await plain.body.dump();
    t.ok(await healthy(), 'the API server and the agent are healthy');
    const { pf, local } = await forward(8080);
    const r = await request(`http://127.0.0.1:${local}/`);
    t.equal(await r.body.text(), 'hello from web', 'and port-forward still works');
    pf.p.kill('SIGINT');
    await pf.exited;
  });
});
