// `flotilla logs POD [-c CONTAINER]`: a container's log through the API
// (pods/NAME/log, which the server proxies to the node agent running it),
// with kubectl's flags: -f, --previous, --tail, --since, --timestamps,
// --limit-bytes.
import { StringDecoder } from 'node:string_decoder';
import { resourcePath } from '../../agents/client/api.ts';
import { resolveKind } from '../../agents/client/kinds.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, DEFAULT_NAMESPACE, NAMESPACE_OPTION, UsageError, parseCommand, parseCount, parseDuration } from './args.ts';
import { type Io, processIo, runVerb, withClient } from './runtime.ts';

export const USAGE = `Print the logs of a container in a pod.

Usage:
  flotilla logs POD [-c CONTAINER] [-n NAMESPACE] [-f] [--previous] [--tail N] [--since 5m] [--timestamps] [--limit-bytes N]

Options:
  -c, --container     the container (needed when the pod has several)
  -f, --follow        stream the log until the container stops
  -p, --previous      the previous (terminated) run of the container
      --tail          only the last N lines
      --since         only lines newer than this duration (5s, 2m, 3h)
      --timestamps    prefix each line with the time the node agent saw it
      --limit-bytes   at most this many bytes
  -n, --namespace     the namespace (default "default")
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  ...NAMESPACE_OPTION,
  container: { type: 'string', short: 'c' },
  follow: { type: 'boolean', short: 'f' },
  previous: { type: 'boolean', short: 'p' },
  tail: { type: 'string' },
  since: { type: 'string' },
  timestamps: { type: 'boolean' },
  'limit-bytes': { type: 'string' },
} as const;

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('logs', argv, OPTIONS), async ({ values, positionals }) => {
    let [name] = positionals;
    if (!name || positionals.length > 1) throw new UsageError('expected exactly one pod name (POD or pod/POD)', 'logs');
    name = name.replace(/^(pods?|po)\//, '');
    const tail = parseCount(values.tail, '--tail');
    const limit = parseCount(values['limit-bytes'], '--limit-bytes');
    const since = values.since ? Math.max(1, Math.ceil(parseDuration(values.since, '--since') / 1000)) : undefined;
    await withClient(io, values, async (c) => {
      const path = resourcePath(resolveKind('pods')!, values.namespace || DEFAULT_NAMESPACE, name, 'log');
      const query = {
        container: values.container, follow: values.follow || undefined, previous: values.previous || undefined,
        tailLines: tail, sinceSeconds: since, timestamps: values.timestamps || undefined, limitBytes: limit,
      };
      // A chunk may end inside a multi-byte character; the decoder carries it over.
      const decoder = new StringDecoder('utf8');
      for await (const chunk of c.stream(path, query)) io.out(decoder.write(chunk));
      io.out(decoder.end());
    });
  });
}
