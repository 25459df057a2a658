// `npm run chaos -- --scenario leader-kill|partition|pause|nats-restart|membership|mixed --seconds S --seed N`
//
// Starts real nats-server and flotilla server processes on loopback, runs
// the register workload and watchers while the scenario's nemeses inject
// faults, then checks the history: linearizability, durability, the event
// stream and watches. Prints a summary and writes a JSON report to
// chaos/reports/. Exits 1 when any anomaly was found.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { checkOperations } from './checker/linearizability.ts';
import { prepareHistory, registerModel } from './checker/register.ts';
import { checkDurability, checkEvents, checkWatches, readStream, settle } from './checks.ts';
import { ChaosCluster } from './cluster.ts';
import { type FaultRecord, SCENARIOS, runNemesis } from './nemesis.ts';
import { Rng } from '../harness/rng.ts';
import { RegisterWorkload } from './workload.ts';

export interface ChaosOptions {
  scenario: string;
  seconds: number;
  seed: number;
  servers?: number;
  natsServers?: number;
  /** Extra server flags, e.g. a debug flag that breaks safety on purpose. */
  serverArgs?: string[];
  reportDir?: string;
  log?: (line: string) => void;
}

export interface ChaosReport {
  scenario: string;
  seed: number;
  seconds: number;
  ops: { ok: number; fail: number; unknown: number };
  anomalies: { linearizability: number; lost: number; events: number; watch: number };
  failovers: { at: number; unavailableMs: number | null; kind: string; detail: string }[];
  faults: FaultRecord[];
  details: { linearizability: string[]; lost: string[]; events: string[]; watch: string[] };
  stream: { messages: number };
  watch: { events: number; resumes: number };
  unavailability: { medianMs: number | null; maxMs: number | null };
  checkerMs: number;
  reportFile?: string;
}

export const REPORT_DIR = fileURLToPath(new URL('./reports/', import.meta.url));

export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const log = o.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  if (!SCENARIOS[o.scenario]) throw new Error(`unknown scenario "${o.scenario}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
  // Independent streams, so that one consumer drawing more does not reshuffle the others.
  const rngCluster = new Rng(o.seed * 4 + 1);
  const rngNemesis = new Rng(o.seed * 4 + 2);
  const rngWorkload = new Rng(o.seed * 4 + 3);
  log(`chaos: scenario ${o.scenario}, ${o.seconds} s, seed ${o.seed}`);
  const cluster = await ChaosCluster.start({
    servers: o.servers ?? 3,
    natsServers: o.natsServers ?? (o.scenario === 'mixed' ? 3 : 1),
    serverArgs: o.serverArgs,
  }, rngCluster);
  try {
    const founding = cluster.servers.members.map((m) => m.url);
    const workload = new RegisterWorkload(() => founding, rngWorkload);
    const { initial, startRv } = await workload.setup();
    const faults: FaultRecord[] = [];
    let running = true;
    const nemesis = runNemesis(o.scenario, {
      cluster, rng: rngNemesis, now: () => workload.now(), running: () => running,
      record: (f) => {
        const rec = { ...f, at: Math.round(workload.now()) };
        faults.push(rec);
        log(`  ${(rec.at / 1000).toFixed(1)}s ${rec.kind}: ${rec.detail}`);
      },
    });
    const watches = await workload.run(o.seconds, startRv);
    running = false;
    await nemesis;
    log('chaos: faults stopped; settling the cluster');
    await settle(cluster);

    const t0 = performance.now();
    const history = prepareHistory(workload.ops, { initial });
    const lin = checkOperations(registerModel(initial), history, { timeoutMs: 120_000 });
    const linDetails = lin.ok === true ? [] : lin.ok === 'unknown' ? [`checker gave up: ${lin.reason}`] : [lin.explanation];
    const stream = await readStream(cluster.nats.urls);
    const durability = await checkDurability(cluster, workload.acked, startRv);
    const events = await checkEvents(cluster, stream, workload.acked);
    const watch = checkWatches(watches, stream);
    const checkerMs = Math.round(performance.now() - t0);

    const ok = workload.ops.filter((x) => 'ok' in x.output ? x.output.ok === true : 'value' in x.output).length;
    const unknown = workload.ops.filter((x) => 'unknown' in x.output).length;
    const fail = workload.ops.length - ok - unknown;
    const writes = workload.ops.filter((x) => x.input.op !== 'read' && 'ok' in x.output && x.output.ok === true);
    const failovers = faults.filter((f) => f.failover).map((f) => {
      // Writes are available again when one completes after the fault.
      const first = writes.filter((w) => w.return >= f.at).sort((a, b) => a.return - b.return)[0];
      return { at: f.at, unavailableMs: first ? Math.round(first.return - f.at) : null, kind: f.kind, detail: f.detail };
    });
    const un = failovers.map((f) => f.unavailableMs).filter((x): x is number => x !== null).sort((a, b) => a - b);
    const report: ChaosReport = {
      scenario: o.scenario, seed: o.seed, seconds: o.seconds,
      ops: { ok, fail, unknown },
      anomalies: {
        linearizability: lin.ok === false ? 1 : 0,
        lost: durability.anomalies,
        events: events.anomalies,
        watch: watch.anomalies,
      },
      failovers, faults,
      details: { linearizability: linDetails, lost: durability.details, events: events.details, watch: watch.details },
      stream: { messages: stream.length },
      watch: { events: watches.reduce((n, w) => n + w.events.length, 0), resumes: watches.reduce((n, w) => n + w.resumes, 0) },
      unavailability: { medianMs: un.length ? un[Math.floor(un.length / 2)] : null, maxMs: un.length ? un[un.length - 1] : null },
      checkerMs,
    };
    const dir = o.reportDir ?? REPORT_DIR;
    mkdirSync(dir, { recursive: true });
    report.reportFile = join(dir, `${o.scenario}-seed${o.seed}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(report.reportFile, `${JSON.stringify(report, null, 2)}\n`);
    // The raw history, to re-check or inspect a run offline.
    writeFileSync(report.reportFile.replace(/\.json$/, '.history.json'), JSON.stringify({ initial, ops: workload.ops.map((x) => ({ ...x, return: Number.isFinite(x.return) ? x.return : null })) }));
    log(summary(report));
    return report;
  } finally {
    await cluster.stop();
  }
}

export function summary(r: ChaosReport): string {
  const a = r.anomalies;
  const total = a.linearizability + a.lost + a.events + a.watch;
  return [
    `chaos ${r.scenario} seed ${r.seed} (${r.seconds} s): ${total === 0 ? 'OK, 0 anomalies' : `${total} ANOMALIES`}`,
    `  ops: ${r.ops.ok} ok, ${r.ops.fail} failed, ${r.ops.unknown} unknown; faults: ${r.faults.length}; stream: ${r.stream.messages} messages; watch: ${r.watch.events} events, ${r.watch.resumes} resumes`,
    `  anomalies: linearizability ${a.linearizability}, lost ${a.lost}, events ${a.events}, watch ${a.watch}`,
    `  failovers: ${r.failovers.length}, write unavailability median ${r.unavailability.medianMs ?? '-'} ms, max ${r.unavailability.maxMs ?? '-'} ms`,
    ...Object.entries(r.details).flatMap(([k, v]) => v.slice(0, 5).map((d) => `  ${k}: ${d}`)),
    `  report: ${r.reportFile}`,
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', default: 'mixed' },
      seconds: { type: 'string', default: '60' },
      seed: { type: 'string', default: String(Date.now() % 100000) },
      servers: { type: 'string', default: '3' },
      nats: { type: 'string' },
      'unsafe-stale-reads': { type: 'boolean', default: false },
    },
    strict: true,
  });
  const report = await runChaos({
    scenario: values.scenario!, seconds: Number(values.seconds), seed: Number(values.seed),
    servers: Number(values.servers), natsServers: values.nats ? Number(values.nats) : undefined,
    serverArgs: values['unsafe-stale-reads'] ? ['--unsafe-stale-reads'] : [],
  });
  const a = report.anomalies;
  process.exit(a.linearizability + a.lost + a.events + a.watch > 0 ? 1 : 0);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    process.stderr.write(`chaos: ${(e as Error).stack ?? e}\n`);
    process.exit(2);
  });
}
