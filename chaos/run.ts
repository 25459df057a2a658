// `npm run chaos -- --scenario leader-kill|partition|pause|nats-restart|membership|controller-kill|scheduler-kill|agent-kill|mixed --seconds S --seed N`
//
// Starts real nats-server and flotilla server processes on loopback, runs
// the register workload and watchers while the scenario's nemeses inject
// faults, then checks the history: linearizability, durability, the event
// stream and watches. The orchestrator scenarios (controller-kill,
// scheduler-kill, agent-kill, mixed) also run two controller managers, two
// schedulers and hollow-node agents under a workload of rollouts, scales,
// pod bursts and a StatefulSet, and check the orchestrator's guarantees over
// the event stream (chaos/orchestrator-checks.ts). Prints a summary and writes a JSON report to
// chaos/reports/. Exits 1 when any anomaly was found.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { checkOperations } from './checker/linearizability.ts';
import { prepareHistory, registerModel } from './checker/register.ts';
import { checkDurability, checkEvents, checkWatches, readStream, settle } from './checks.ts';
import { ChaosCluster } from './cluster.ts';
import { type FaultRecord, ORCHESTRATOR_SCENARIOS, SCENARIOS, runNemesis } from './nemesis.ts';
import { Orchestrator } from './orchestrator.ts';
import { type Disruption, checkConvergence, checkGarbageCollected, checkNodeOvercommit, checkRolloutBounds, checkStatefulSetOrdinals } from './orchestrator-checks.ts';
import { type OrchestratorActions, OrchestratorWorkload } from './orchestrator-workload.ts';
import { waitConverged } from './converge.ts';
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
  /** conflicts: unconditional writes refused with 409 (no effect; left out of the history). */
  ops: { ok: number; fail: number; unknown: number; conflicts?: number };
  anomalies: { linearizability: number; lost: number; events: number; watch: number; rollout?: number; overcommit?: number; ordinals?: number; garbage?: number; convergence?: number; unresponsive?: number };
  failovers: { at: number; unavailableMs: number | null; kind: string; detail: string }[];
  faults: FaultRecord[];
  details: { linearizability: string[]; lost: string[]; events: string[]; watch: string[]; rollout?: string[]; overcommit?: string[]; ordinals?: string[]; garbage?: string[]; convergence?: string[]; unresponsive?: string[] };
  /** The orchestrator scenarios: what the workload did, how many rollout-bound checks ran, when the cluster converged. */
  orchestrator?: { actions: OrchestratorActions; rolloutChecks: number; convergedMs: number | null; boundMs: number; disruptions: Disruption[] };
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
  const withOrchestrator = ORCHESTRATOR_SCENARIOS.has(o.scenario);
  const cluster = await ChaosCluster.start({
    servers: o.servers ?? 3,
    natsServers: o.natsServers ?? (o.scenario === 'mixed' ? 3 : 1),
    // Pods tolerate an unreachable node for 5 s: agent kills evict within the run.
    serverArgs: [...(o.serverArgs ?? []), ...(withOrchestrator ? ['--default-unreachable-toleration-seconds', '5', '--default-not-ready-toleration-seconds', '5'] : [])],
  }, rngCluster);
  let orch: Orchestrator | undefined;
  let orchWork: OrchestratorWorkload | undefined;
  // The nemesis runs while this is true: a run that fails part-way stops it too (finally), or it would go on forever.
  let running = true;
  try {
    const founding = cluster.servers.members.map((m) => m.url);
    const workload = new RegisterWorkload(() => founding, rngWorkload);
    const { initial, startRv } = await workload.setup();
    let orchRun: Promise<void> | undefined;
    if (withOrchestrator) {
      orch = await Orchestrator.start({ servers: founding, nats: cluster.nats.url, log });
      orchWork = new OrchestratorWorkload(founding, new Rng(o.seed * 4 + 4));
      await orchWork.setup();
      orchRun = orchWork.run();
      log(`chaos: orchestrator up (2 controller managers, 2 schedulers, ${orch.agents.length} hollow-node agents; logs in ${orch.dir})`);
    }
    const faults: FaultRecord[] = [];
    const nemesis = runNemesis(o.scenario, {
      cluster, rng: rngNemesis, now: () => workload.now(), running: () => running, orch,
      record: (f) => {
        const rec = { ...f, at: Math.round(workload.now()), wall: f.wall ?? Date.now() };
        faults.push(rec);
        log(`  ${(rec.at / 1000).toFixed(1)}s ${rec.kind}: ${rec.detail}`);
      },
    });
    const watches = await workload.run(o.seconds, startRv);
    running = false;
    orchWork?.stop();
    await orchRun;
    await nemesis;
    const faultsStopped = Date.now();
    log('chaos: faults stopped; settling the cluster');
    await settle(cluster);
    const CONVERGENCE_BOUND_MS = 90_000;
    if (orch) {
      await orch.settle();
      const left = await waitConverged(founding, CONVERGENCE_BOUND_MS + 30_000 - (Date.now() - faultsStopped));
      log(left.length ? `chaos: not converged: ${left.slice(0, 3).join('; ')}` : `chaos: converged ${Math.round((Date.now() - faultsStopped) / 1000)} s after the faults stopped`);
      // Everything committed so far is on the stream.
      await settle(cluster);
    }

    const t0 = performance.now();
    const history = prepareHistory(workload.ops, { initial });
    const lin = checkOperations(registerModel(initial), history, { timeoutMs: 120_000 });
    const linDetails = lin.ok === true ? [] : lin.ok === 'unknown' ? [`checker gave up: ${lin.reason}`] : [lin.explanation];
    const stream = await readStream(cluster.nats.urls);
    const durability = await checkDurability(cluster, workload.acked, startRv);
    const events = await checkEvents(cluster, stream, workload.acked);
    const watch = checkWatches(watches, stream);
    let orchestrator: ChaosReport['orchestrator'];
    const orchAnomalies: Partial<ChaosReport['anomalies']> = {};
    const orchDetails: Partial<ChaosReport['details']> = {};
    if (orch && orchWork) {
      const disruptions: Disruption[] = faults.filter((f) => f.disruptionMs !== undefined).map((f) => ({ from: f.wall!, to: f.wall! + f.disruptionMs!, what: f.detail }));
      const rollout = checkRolloutBounds(stream, disruptions);
      const conv = checkConvergence(stream, faultsStopped, CONVERGENCE_BOUND_MS);
      const outcomes = { rollout, overcommit: checkNodeOvercommit(stream), ordinals: checkStatefulSetOrdinals(stream), garbage: checkGarbageCollected(stream), convergence: conv, unresponsive: orch.liveness.outcome() };
      for (const [k, v] of Object.entries(outcomes)) {
        orchAnomalies[k as 'rollout'] = v.anomalies;
        orchDetails[k as 'rollout'] = v.details;
      }
      orchestrator = { actions: orchWork.actions, rolloutChecks: rollout.checks, convergedMs: conv.convergedMs, boundMs: CONVERGENCE_BOUND_MS, disruptions };
    }
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
      ops: { ok, fail, unknown, conflicts: workload.conflicts },
      anomalies: {
        linearizability: lin.ok === false ? 1 : 0,
        lost: durability.anomalies,
        events: events.anomalies,
        watch: watch.anomalies,
        ...orchAnomalies,
      },
      failovers, faults,
      details: { linearizability: linDetails, lost: durability.details, events: events.details, watch: watch.details, ...orchDetails },
      orchestrator,
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
    running = false;
    await orch?.stop();
    await orchWork?.close();
    await cluster.stop();
  }
}

/** Every anomaly of the report, the orchestrator's included. */
export function totalAnomalies(r: ChaosReport): number {
  return Object.values(r.anomalies).reduce((n: number, x) => n + (x ?? 0), 0);
}

export function summary(r: ChaosReport): string {
  const a = r.anomalies;
  const total = totalAnomalies(r);
  const orch = r.orchestrator;
  return [
    `chaos ${r.scenario} seed ${r.seed} (${r.seconds} s): ${total === 0 ? 'OK, 0 anomalies' : `${total} ANOMALIES`}`,
    `  ops: ${r.ops.ok} ok, ${r.ops.fail} failed, ${r.ops.unknown} unknown${r.ops.conflicts ? `, ${r.ops.conflicts} writes refused 409` : ''}; faults: ${r.faults.length}; stream: ${r.stream.messages} messages; watch: ${r.watch.events} events, ${r.watch.resumes} resumes`,
    `  anomalies: linearizability ${a.linearizability}, lost ${a.lost}, events ${a.events}, watch ${a.watch}`,
    ...(orch ? [
      `  orchestrator: rollout ${a.rollout}, overcommit ${a.overcommit}, ordinals ${a.ordinals}, garbage ${a.garbage}, convergence ${a.convergence}, unresponsive ${a.unresponsive ?? 0}; ${orch.actions.ok} actions (${orch.actions.failed} failed), ${orch.rolloutChecks} rollout-bound checks, converged ${orch.convergedMs === null ? 'never' : `${(orch.convergedMs / 1000).toFixed(1)} s`} after the faults (bound ${orch.boundMs / 1000} s)`,
    ] : []),
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
  process.exit(totalAnomalies(report) > 0 ? 1 : 0);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((e) => {
    process.stderr.write(`chaos: ${(e as Error).stack ?? e}\n`);
    process.exit(2);
  });
}
