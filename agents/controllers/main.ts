// `flotilla controllers`: the controller manager, one process like
// kube-controller-manager. Every replica keeps warm caches (the shared
// informers start at once); only the one holding the Lease runs the
// controllers. A leader that cannot renew within the renew deadline stops
// its controllers and exits (as kube-controller-manager does: "leaderelection
// lost"), so two managers never act at once; its supervisor restarts it as a
// standby. A clean shutdown releases the Lease so a standby takes over at once.
import { setMaxListeners } from 'node:events';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import client from 'prom-client';
import { parseDuration } from '../../api/units.ts';
import { ApiClient } from '../client/api.ts';
import { loadClientConfig } from '../client/config.ts';
import { serveHealth } from '../health/http.ts';
import type { Logger } from '../informer/informer.ts';
import { resolveNatsUrl } from '../informer/nats.ts';
import { type LeaderElector } from '../leaderelection/index.ts';
import { electorFromFlags, leaderElectFlags } from '../leaderelection/flags.ts';
import { type FlagOptions, parseBool, parseFlags } from '../process/flags.ts';
import { CONFIG_FLAGS, type ControllerConfig, DEFAULT_CONTROLLER_CONFIG, newControllerContext, stopControllerContext } from './context.ts';
import type { Controller } from './controller.ts';
import { CONTROLLERS, selectControllers } from './registry.ts';
import { redactNatsUrls } from '../../api/nats-url.ts';

const USAGE = `usage: flotilla controllers [--server URL[,URL…]] [--nats URL[,URL…]] [--id NAME]
       [--controllers '*'] [--metrics-address 127.0.0.1:0]
       [--leader-elect true] [--leader-elect-lease-duration 15s] [--leader-elect-renew-deadline 10s]
       [--leader-elect-retry-period 2s] [--leader-elect-resource-namespace kube-system]
       [--leader-elect-resource-name flotilla-controller-manager] [--log-level info]
${CONFIG_FLAGS.map((f) => `       [--${f.flag} ${f.type === 'duration' ? 'DURATION' : f.type.toUpperCase()}]  ${f.help}`).join('\n')}
controllers: ${CONTROLLERS.map((c) => c.name).join(', ')}`;


function configFrom(values: Record<string, string | boolean | undefined>): ControllerConfig {
  const config: Record<string, unknown> = { ...DEFAULT_CONTROLLER_CONFIG };
  for (const f of CONFIG_FLAGS) {
    const v = values[f.flag];
    if (typeof v !== 'string') continue;
    switch (f.type) {
      case 'duration': config[f.field] = parseDuration(v, `--${f.flag}`); break;
      case 'int': {
        if (!/^\d+$/.test(v)) throw new Error(`invalid value "${v}" for --${f.flag}: expected a non-negative integer`);
        config[f.field] = Number(v);
        break;
      }
      case 'number': {
        if (!/^\d+(\.\d+)?$/.test(v)) throw new Error(`invalid value "${v}" for --${f.flag}: expected a non-negative number`);
        config[f.field] = Number(v);
        break;
      }
      case 'bool': config[f.field] = parseBool(v, f.flag); break;
      default: config[f.field] = v;
    }
  }
  return config as unknown as ControllerConfig;
}

export async function main(argv: string[]): Promise<void> {
  const options: FlagOptions = {
    server: { type: 'string' }, kubeconfig: { type: 'string' }, nats: { type: 'string' }, id: { type: 'string' },
    controllers: { type: 'string', default: '*' },
    'metrics-address': { type: 'string', default: '127.0.0.1:0' },
    ...leaderElectFlags('flotilla-controller-manager'),
    'log-level': { type: 'string', default: process.env.FLOTILLA_LOG_LEVEL ?? 'info' },
  };
  for (const f of CONFIG_FLAGS) options[f.flag] = { type: 'string' };
  const values = parseFlags(argv, options, USAGE);
  if (!values) return;
  const str = (k: string) => values[k] as string;
  const log = pino({ name: 'controllers', level: str('log-level') });
  const config = configFrom(values);
  const selected = selectControllers(str('controllers'));
  const leaderElect = parseBool(str('leader-elect'), 'leader-elect');
  const identity = str('id') || `${hostname()}_${randomBytes(4).toString('hex')}`;
  const cfg = loadClientConfig({ server: str('server'), kubeconfig: str('kubeconfig') });
  const nats = resolveNatsUrl(str('nats'));
  const api = new ApiClient(cfg.servers, { credentials: cfg.credentials, userAgent: `flotilla-controllers/${identity}` });
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const ctx = newControllerContext({ client: api, nats, config, log, registry, host: identity });

  // Every controller asks for its informers when it is created; create them
  // all now (without running them) so that the caches are warm before this
  // replica leads.
  const controllers: Controller[] = selected.map((d) => d.create(ctx));
  let leading = false;
  let running: Promise<unknown> | undefined;
  let abort: AbortController | undefined;
  const leadingGauge = new client.Gauge({ name: 'flotilla_controllers_leading', help: '1 while this replica runs the controllers.', registers: [registry] });

  const health = await serveHealth({
    address: str('metrics-address'), registry,
    healthz: () => ({ ok: true, detail: { identity, leading, synced: ctx.informers.hasSynced(), controllers: selected.map((c) => c.name) } }),
    readyz: () => ({ ok: ctx.informers.hasSynced(), detail: { identity, leading } }),
  });
  log.info({ identity, servers: cfg.servers, nats: nats && redactNatsUrls(nats), metrics: health.address, controllers: selected.map((c) => c.name) }, 'starting');
  await ctx.informers.start();
  log.info('caches synced');

  const runControllers = (signal: AbortSignal) => {
    leading = true;
    leadingGauge.set(1);
    log.info({ identity }, 'leading: starting controllers');
    running = Promise.allSettled(controllers.map((c) => c.run(signal).catch((e) => log.error({ controller: c.name, err: (e as Error).message }, 'controller stopped with an error'))));
  };

  let elector: LeaderElector | undefined;
  let stopping = false;
  const shutdown = async (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    // The elector aborts the controllers' signal, waits for their work and
    // then releases the Lease; without leader election, abort directly.
    if (elector) await elector.stop().catch(() => {});
    else {
      abort?.abort();
      await Promise.race([running, new Promise((r) => setTimeout(r, 5000).unref())]);
    }
    await stopControllerContext(ctx).catch(() => {});
    await health.close();
    await api.close();
    process.exit(code);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  if (!leaderElect) {
    abort = new AbortController();
    setMaxListeners(0, abort.signal); // every controller listens on it (see the elector's term signal)
    runControllers(abort.signal);
    return;
  }
  elector = electorFromFlags(values, {
    client: api, identity, registry,
    logger: log.child({ component: 'leaderelection' }) as Logger,
    // Returning the controllers' work lets stop() wait for it before releasing the Lease.
    onStartedLeading: (signal) => {
      runControllers(signal);
      return running;
    },
    onStoppedLeading: () => {
      leading = false;
      leadingGauge.set(0);
      if (stopping) return;
      log.error({ identity }, 'leaderelection lost: stopping the controllers and exiting');
      void shutdown('leaderelection lost', 1);
    },
    onNewLeader: (holder) => log.info({ leader: holder }, 'new leader'),
  });
  void elector.run();
}
