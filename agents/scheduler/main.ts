// `flotilla scheduler`: one process like kube-scheduler. Every replica
// keeps warm caches (informers and the queue fill at once); only the holder
// of the Lease kube-system/kube-scheduler schedules. A leader that cannot
// renew in time stops and exits (kube-scheduler: "leaderelection lost"),
// its supervisor restarts it as a standby; SIGTERM releases the Lease so a
// standby takes over at once.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import client from 'prom-client';
import { parseDuration } from '../../api/units.ts';
import { ApiClient } from '../client/api.ts';
import { loadClientConfig } from '../client/config.ts';
import { serveHealth } from '../health/http.ts';
import { SharedInformerFactory } from '../informer/factory.ts';
import type { Logger } from '../informer/informer.ts';
import { resolveNatsUrl } from '../informer/nats.ts';
import type { LeaderElector } from '../leaderelection/index.ts';
import { electorFromFlags, leaderElectFlags } from '../leaderelection/flags.ts';
import { parseBool, parseFlags } from '../process/flags.ts';
import { EventBroadcaster } from '../recorder/recorder.ts';
import { Scheduler } from './scheduler.ts';
import { redactNatsUrls } from '../../api/nats-url.ts';

const USAGE = `usage: flotilla scheduler [--server URL[,URL…]] [--nats URL[,URL…]] [--id NAME]
       [--metrics-address 127.0.0.1:0] [--parallel-bindings 64] [--percentage-of-nodes-to-score 0]
       [--leader-elect true] [--leader-elect-lease-duration 15s] [--leader-elect-renew-deadline 10s]
       [--leader-elect-retry-period 2s] [--leader-elect-resource-namespace kube-system]
       [--leader-elect-resource-name kube-scheduler] [--log-level info]`;


function parseInt(v: string, flag: string, min: number, max: number): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) throw new Error(`invalid value "${v}" for --${flag}: expected an integer from ${min} to ${max}`);
  return n;
}

export async function main(argv: string[]): Promise<void> {
  const values = parseFlags(argv, {
    server: { type: 'string' }, kubeconfig: { type: 'string' }, nats: { type: 'string' }, id: { type: 'string' },
    'metrics-address': { type: 'string', default: '127.0.0.1:0' },
    'parallel-bindings': { type: 'string', default: '64' },
    'percentage-of-nodes-to-score': { type: 'string', default: '0' },
    ...leaderElectFlags('kube-scheduler'),
    'log-level': { type: 'string', default: process.env.FLOTILLA_LOG_LEVEL ?? 'info' },
  }, USAGE);
  if (!values) return;
  const str = (k: string) => values[k] as string;
  const log = pino({ name: 'scheduler', level: str('log-level') });
  const leaderElect = parseBool(str('leader-elect'), 'leader-elect');
  const parallelBindings = parseInt(str('parallel-bindings'), 'parallel-bindings', 1, 10_000);
  const percentageOfNodesToScore = parseInt(str('percentage-of-nodes-to-score'), 'percentage-of-nodes-to-score', 0, 100);
  const identity = str('id') || `${hostname()}_${randomBytes(4).toString('hex')}`;
  const cfg = loadClientConfig({ server: str('server'), kubeconfig: str('kubeconfig') });
  const nats = resolveNatsUrl(str('nats'));
  const api = new ApiClient(cfg.servers, { credentials: cfg.credentials, userAgent: `flotilla-scheduler/${identity}` });
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const informers = new SharedInformerFactory({ client: api, nats, logger: log.child({ component: 'informer' }) as Logger, name: 'flotilla-scheduler' });
  const broadcaster = new EventBroadcaster({ client: api, logger: log.child({ component: 'events' }) as Logger, host: identity });
  const scheduler = new Scheduler({
    client: api, informers, recorder: broadcaster.recorder('default-scheduler'), log, registry, parallelBindings, percentageOfNodesToScore,
  });
  let leading = false;
  let running: Promise<void> | undefined;
  let abort: AbortController | undefined;

  const health = await serveHealth({
    address: str('metrics-address'), registry,
    healthz: () => ({ ok: true, detail: { identity, leading, synced: informers.hasSynced(), ...scheduler.stats, pending: scheduler.queue.counts() } }),
    readyz: () => ({ ok: informers.hasSynced(), detail: { identity, leading } }),
  });
  log.info({ identity, servers: cfg.servers, nats: nats && redactNatsUrls(nats), metrics: health.address, parallelBindings }, 'starting');
  await scheduler.start();
  log.info({ nodes: scheduler.cache.nodeCount, pods: scheduler.cache.podCount }, 'caches synced');

  const lead = (signal: AbortSignal) => {
    leading = true;
    log.info({ identity }, 'leading: scheduling');
    running = scheduler.run(signal).catch((e) => log.error({ err: (e as Error).message }, 'scheduling loop failed'));
    return running;
  };

  let elector: LeaderElector | undefined;
  let stopping = false;
  const shutdown = async (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    if (elector) await elector.stop().catch(() => {});
    else {
      abort?.abort();
      await Promise.race([running, new Promise((r) => setTimeout(r, 5000).unref())]);
    }
    await broadcaster.stop().catch(() => {});
    await informers.stop().catch(() => {});
    await health.close();
    await api.close();
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  if (!leaderElect) {
    abort = new AbortController();
    void lead(abort.signal);
    return;
  }
  elector = electorFromFlags(values, {
    client: api, identity, registry,
    logger: log.child({ component: 'leaderelection' }) as Logger,
    onStartedLeading: (signal) => lead(signal),
    onStoppedLeading: () => {
      leading = false;
      if (stopping) return;
      log.error({ identity }, 'leaderelection lost: exiting');
      void shutdown('leaderelection lost', 1);
    },
    onNewLeader: (holder) => log.info({ leader: holder }, 'new leader'),
  });
  void elector.run();
}
