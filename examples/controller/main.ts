// Runs the configmap-summary controller (see controller.ts and README.md):
//
//   node --import=tsx examples/controller/main.ts --server URL[,URL…] --nats URL[,URL…] [-n NAMESPACE]
//
// Without --server/--nats it finds the cluster like the CLI does
// ($FLOTILLA_SERVER / $FLOTILLA_NATS, then ./.flotilla/cluster.json).
import { parseArgs } from 'node:util';
import pino from 'pino';
import { ApiClient } from '../../agents/client/api.ts';
import { loadClientConfig } from '../../agents/client/config.ts';
import { resolveNatsUrl } from '../../agents/informer/index.ts';
import { CONTROLLER_NAME, SummaryController } from './controller.ts';

const USAGE = `usage: node --import=tsx examples/controller/main.ts [--server URL[,URL…]] [--kubeconfig FILE] [--nats URL[,URL…]]
          [-n NAMESPACE] [--summary-name NAME] [--workers N] [--resync-seconds S] [--log-level info|debug|warn]`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      server: { type: 'string' },
      kubeconfig: { type: 'string' },
      nats: { type: 'string' },
      namespace: { type: 'string', short: 'n' },
      'summary-name': { type: 'string', default: 'summary' },
      workers: { type: 'string', default: '2' },
      'resync-seconds': { type: 'string', default: '600' },
      'log-level': { type: 'string', default: 'info' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const log = pino({ name: CONTROLLER_NAME, level: values['log-level'] });
  const cfg = loadClientConfig({ server: values.server, kubeconfig: values.kubeconfig });
  const nats = resolveNatsUrl(values.nats);
  const client = new ApiClient(cfg.servers, { credentials: cfg.credentials, userAgent: `${CONTROLLER_NAME}/0.1.0` });
  const controller = new SummaryController({
    client, nats, namespace: values.namespace, summaryName: values['summary-name'],
    workers: Number(values.workers), resyncMs: Number(values['resync-seconds']) * 1000, logger: log,
  });
  log.info({ servers: cfg.servers, nats, namespace: values.namespace ?? '(all)' }, 'starting');
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, stats: controller.informer.stats }, 'stopping');
    await controller.stop();
    await client.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  await controller.start();
}

main(process.argv.slice(2)).catch((e) => {
  process.stderr.write(`${CONTROLLER_NAME}: ${(e as Error).message}\n${USAGE}\n`);
  process.exit(1);
});
