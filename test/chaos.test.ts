// A short run of every chaos scenario (the long ones are `npm run chaos`),
// and proof that the checkers catch a real bug: servers started with a
// debug flag that serves "linearizable" reads from local state.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { type ChaosReport, runChaos, totalAnomalies } from '../chaos/run.ts';
import { ORCHESTRATOR_SCENARIOS, SCENARIOS } from '../chaos/nemesis.ts';
import { FLOTILLA_BIN, tempDir } from '../harness/procs.ts';

const SECONDS = Number(process.env.CHAOS_TEST_SECONDS ?? 6);
const quiet = (lines: string[]) => (l: string) => lines.push(l);

const anomalies = (r: ChaosReport): number => totalAnomalies(r);

// The orchestrator scenarios start a dozen more processes and wait for convergence: only `mixed` (all of them) runs here.
for (const scenario of Object.keys(SCENARIOS).filter((s) => s === 'mixed' || !ORCHESTRATOR_SCENARIOS.has(s))) {
  t.test(`chaos: ${scenario}`, async (t) => {
    const lines: string[] = [];
    const r = await runChaos({ scenario, seconds: SECONDS, seed: 42, reportDir: tempDir('chaos-reports'), log: quiet(lines) });
    t.comment(lines.join('\n'));
    t.equal(anomalies(r), 0, `no anomaly (${JSON.stringify(r.anomalies)})`);
    t.ok(r.ops.ok > 50, `${r.ops.ok} operations succeeded`);
    t.ok(r.faults.length > 0, `${r.faults.length} faults injected`);
    t.ok(r.stream.messages > 0, 'the event stream was checked');
    t.ok(r.watch.events > 0, 'the watches were checked');
    for (const k of ['scenario', 'seed', 'seconds', 'ops', 'anomalies', 'failovers'] as const) t.ok(k in r, `report has ${k}`);
  });
}

t.test('the planted bug (reads served from local state) is caught', async (t) => {
  // The flag is refused unless the environment names it.
  const refused = spawnSync(process.execPath, [FLOTILLA_BIN, 'server', '--id', 's1', '--peers', 's1=127.0.0.1:1', '--api', '127.0.0.1:1', '--data', tempDir('unsafe'), '--unsafe-stale-reads'], {
    encoding: 'utf8', env: { ...process.env, FLOTILLA_UNSAFE: '' }, timeout: 30_000,
  });
  t.not(refused.status, 0, 'the debug flag is refused without FLOTILLA_UNSAFE');
  t.match(refused.stderr, /FLOTILLA_UNSAFE=stale-reads/);

  process.env.FLOTILLA_UNSAFE = 'stale-reads';
  t.teardown(() => {
    delete process.env.FLOTILLA_UNSAFE;
  });
  let caught: ChaosReport | undefined;
  const lines: string[] = [];
  for (let seed = 1; seed <= 3 && !caught; seed++) {
    const r = await runChaos({ scenario: 'partition', seconds: 10, seed, serverArgs: ['--unsafe-stale-reads'], reportDir: tempDir('chaos-reports'), log: quiet(lines) });
    if (r.anomalies.linearizability > 0) caught = r;
  }
  t.comment(lines.join('\n'));
  t.ok(caught, 'the linearizability checker reports the stale reads');
  if (caught) {
    t.comment(caught.details.linearizability[0]?.slice(0, 2000) ?? '');
    t.match(caught.details.linearizability[0] ?? '', /k\d/, 'the explanation names the key');
  }
});
