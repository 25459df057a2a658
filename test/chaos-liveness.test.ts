// The chaos runner's liveness monitor (chaos/liveness.ts) against real
// processes: one that answers /healthz is left alone, one whose event loop
// stops turning (a microtask loop, as the controller manager's was) is
// reported with the CPU it burns and, with FLOTILLA_CHAOS_DIAG=1, the JavaScript
// function it spins in; one stopped with SIGSTOP is not a hang.
import t from 'tap';
import { request } from 'undici';
import { LivenessMonitor } from '../chaos/liveness.ts';
import type { ControllerManager } from '../harness/controllers.ts';
import { freePort, startProcess, tempDir, waitFor } from '../harness/procs.ts';
import { join } from 'node:path';

// Answers /healthz until /spin, then loops in the microtask queue for ever.
const SCRIPT = `
import http from 'node:http';
function spinForEver() { return Promise.resolve().then(spinForEver); }
http.createServer((q, r) => {
  r.end('{"status":"ok"}');
  if (q.url === '/spin') setTimeout(spinForEver, 10);
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

async function component(name: string) {
  const port = await freePort();
  const logFile = join(tempDir('liveness'), `${name}.log`);
  const proc = startProcess(process.execPath, ['--inspect-port=127.0.0.1:0', '--input-type=module', '-e', SCRIPT, String(port)], { logFile });
  const url = (path: string) => `http://127.0.0.1:${port}${path}`;
  const health = async () => {
    try {
      const r = await request(url('/healthz'), { headersTimeout: 500, bodyTimeout: 500 });
      return (await r.body.json()) as { status: string; leading: boolean; synced: boolean };
    } catch {
      return undefined;
    }
  };
  await waitFor(`${name} answers`, health);
  // The monitor uses what ControllerManager offers it: proc, logFile, health().
  const replica = { proc, logFile, health } as unknown as ControllerManager;
  return { proc, replica, spin: () => request(url('/spin')).then((r) => r.body.text()) };
}

t.test('an alive but silent process is reported, a stopped one is not', async (t) => {
  process.env.FLOTILLA_CHAOS_DIAG = '1';
  t.teardown(() => { delete process.env.FLOTILLA_CHAOS_DIAG; });
  const hung = await component('hung');
  t.teardown(() => hung.proc.kill('SIGKILL'));
  const paused = await component('paused');
  t.teardown(async () => { process.kill(paused.proc.pid, 'SIGCONT'); await paused.proc.kill('SIGKILL'); });
  const lines: string[] = [];
  const m = new LivenessMonitor([{ name: 'hung', replica: () => hung.replica }, { name: 'paused', replica: () => paused.replica }], { silentMs: 1500, log: (l) => lines.push(l) });

  for (let i = 0; i < 3; i++) await m.poll();
  t.same(m.outcome(), { anomalies: 0, details: [] }, 'answering processes are not reported');

  await hung.spin();
  process.kill(paused.proc.pid, 'SIGSTOP');
  const stoppedAt = Date.now();
  const found = await waitFor('the hung process reported', async () => {
    await m.poll();
    return m.found.length ? m.found : undefined;
  }, 60_000, 250);
  t.equal(found.length, 1, 'only the hung one');
  t.match(found[0], { component: 'hung', pid: hung.proc.pid, state: /^[RSD]$/ }, `alive (state ${found[0]!.state})`);
  t.ok(found[0]!.cpuMsPerSecond > 0, `and burning CPU (${found[0]!.cpuMsPerSecond} ms in a second), not blocked`);
  t.match(found[0]!.stack?.[0], /^spinForEver /, `its stack names the loop: ${found[0]!.stack?.join(' < ')}`);
  t.match(m.outcome(), { anomalies: 1, details: [/^hung \(pid \d+\) alive but silent on \/healthz .* ms of CPU in the next second; stack: spinForEver/] });
  t.equal(lines.length, 1, 'logged once');

  // Poll on until the stopped one has been silent well past the limit too.
  while (Date.now() - stoppedAt < 4000) await m.poll();
  t.equal(m.found.length, 1, 'reported once per process; the SIGSTOPped one is not a hang');
});
