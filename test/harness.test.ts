// The process harness (harness/): a cluster is handed out only once every
// member listens; a member that could not bind its port (taken between
// freePort() and the child's bind) makes the group start again on other
// ports; a process that dies says why, with its log, instead of a bare
// ECONNREFUSED.
import { type Server, createConnection, createServer } from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { KvCluster } from '../harness/kv-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { ProcessStartError, freePort, plantPorts, startListening, startProcess, tempDir, waitListening } from '../harness/procs.ts';

/** Holds a loopback port (as another process would) until closed. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const port = await freePort();
  const server = createServer((s) => s.destroy());
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(port, '127.0.0.1', () => res());
  });
  return { port, server };
}

/** Whether `name` answers on `port` (it greets with its name; the held port just hangs up). */
function greets(port: number, name: string): Promise<boolean> {
  return new Promise((res) => {
    const s = createConnection({ host: '127.0.0.1', port });
    let got = '';
    s.on('data', (d) => {
      got += String(d);
    });
    s.on('close', () => res(got === name));
    s.on('error', () => res(false));
  });
}

/** A node one-liner that listens on `port` and greets each connection with `name` (or dies with EADDRINUSE). */
function listener(dir: string, name: string, port: number) {
  return startProcess(process.execPath, ['-e', `require('node:net').createServer((s) => s.end(${JSON.stringify(name)})).listen(${port}, '127.0.0.1')`], {
    logFile: join(dir, `${name}.log`),
  });
}

t.test('freePort never hands out the same port twice, and none from the ephemeral range', async (t) => {
  const ports = await Promise.all(Array.from({ length: 50 }, () => freePort()));
  t.equal(new Set(ports).size, ports.length, 'all distinct');
  t.ok(ports.every((p) => p >= 1024 && p < 32_768), 'below the kernel\'s ephemeral range');
});

t.test('waitListening fails with the log tail when the process exits', async (t) => {
  const dir = tempDir('harness');
  const p = startProcess(process.execPath, ['-e', 'console.error("boom: the config is wrong"); process.exit(3)'], { logFile: join(dir, 'dies.log') });
  const err = await waitListening(p, 'the dying process', async () => false, 20_000).catch((e: unknown) => e);
  t.type(err, ProcessStartError);
  t.match((err as Error).message, /the dying process exited \(3\)/);
  t.match((err as Error).message, /boom: the config is wrong/, 'the log tail is in the error');
  t.equal((err as ProcessStartError).addrInUse, false);
});

t.test('startListening restarts a group whose member could not bind, on new ports', async (t) => {
  const dir = tempDir('harness');
  const held = await holdPort();
  t.teardown(() => held.server.close());
  let ports = [held.port, await freePort()];
  let plans = 0;
  const procs: ReturnType<typeof listener>[] = [];
  t.teardown(() => Promise.all(procs.map((p) => p.kill())));
  await startListening({
    listeners: () => ports.map((port, i) => ({
      what: `listener ${i}`,
      start: () => {
        const p = listener(dir, `l${i}`, port);
        procs.push(p);
        return p;
      },
      ready: () => greets(port, `l${i}`),
    })),
    replan: async () => {
      plans++;
      ports = [await freePort(), await freePort()];
    },
  });
  t.equal(plans, 1, 'one replan');
  t.not(ports[0], held.port, 'the taken port is no longer planned');
  const live = procs.slice(-2);
  t.ok(live.every((p) => p.child.exitCode === null), 'the group handed out is running');
});

t.test('a bind failure is final without replan, and says which address', async (t) => {
  const dir = tempDir('harness');
  const held = await holdPort();
  t.teardown(() => held.server.close());
  const err = await startListening({
    listeners: () => [{ what: 'the listener', start: () => listener(dir, 'once', held.port), ready: async () => false }],
  }).catch((e: unknown) => e);
  t.type(err, ProcessStartError);
  t.equal((err as ProcessStartError).addrInUse, true);
  t.match((err as Error).message, /EADDRINUSE/, 'the log tail names the error');
});

t.test('KvCluster: a member whose planned port is taken is restarted elsewhere; every member answers', async (t) => {
  const held = await holdPort();
  t.teardown(() => held.server.close());
  plantPorts([held.port]); // member 1's peer port
  const c = await KvCluster.start(3);
  t.teardown(() => c.stop());
  t.not(c.member('1').peer, `127.0.0.1:${held.port}`, 'member 1 was moved off the taken port');
  for (const m of c.members) t.ok(await c.status(m.id), `member ${m.id} answers as soon as start() returns`);
  t.ok(await c.put('1', 'k', 'v'), 'a write through member 1');
  // A dead member's request failure carries its log, not a bare ECONNREFUSED.
  await c.kill('2');
  const err = await c.put('2', 'k', 'v').catch((e: unknown) => e);
  t.type(err, ProcessStartError);
  t.match((err as Error).message, /raft-kv member 2 .*has exited/);
  t.match((err as Error).message, /\(log .*m2\.log\)/, 'names its log');
});

t.test('NatsServers: a server whose planned client port is taken is restarted elsewhere', async (t) => {
  const held = await holdPort();
  t.teardown(() => held.server.close());
  plantPorts([held.port]); // n1's client port (the held port accepts connections: only the process's fate tells)
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  t.not(nats.members[0].port, held.port, 'moved off the taken port');
  t.equal(nats.members[0].proc?.child.exitCode, null, 'the server handed out is running');
  const { connect } = await import('nats');
  const nc = await connect({ servers: nats.url, timeout: 5000 });
  const jsm = await nc.jetstreamManager();
  t.ok(await jsm.getAccountInfo(), 'and serves JetStream');
  await nc.close();
});

t.test('FlotillaCluster: a server whose planned API port is taken is restarted elsewhere; every one answers', async (t) => {
  const held = await holdPort();
  t.teardown(() => held.server.close());
  plantPorts([await freePort(), held.port]); // s1: peer, api
  const c = await FlotillaCluster.start(3);
  t.teardown(() => c.stop());
  t.not(c.member('s1').api, `127.0.0.1:${held.port}`, 's1 was moved off the taken port');
  for (const m of c.members) t.ok(await c.listening(m.id), `${m.id} answers as itself as soon as start() returns`);
});
