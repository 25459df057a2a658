// Argument parsing shared by the client verbs: node:util parseArgs with the
// few kubectl conventions it lacks (`--flag=false`, `TYPE/NAME`, durations),
// and the flags every verb has (--server, --help).
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { DurationError, parseDuration as parseDurationValue } from '../../api/units.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** A mistake in how the command was called; printed as `error: …` with a pointer to --help. */
export class UsageError extends Error {
  override name = 'UsageError';
  constructor(message: string, readonly command?: string) {
    super(message);
  }
}

/** Flags every client verb accepts. */
export const COMMON_OPTIONS = {
  server: { type: 'string' },
  kubeconfig: { type: 'string' },
  'request-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

/** The help text of COMMON_OPTIONS, appended to every verb's usage. */
export const CONNECTION_HELP = `
Connection options:
      --server           server URL[,URL…] (default: the --kubeconfig's server, $FLOTILLA_SERVER, then ./.flotilla/cluster.json)
      --kubeconfig       credentials and CA (and, without --server, the server), as kubectl's
                         (default: $KUBECONFIG, then the kubeconfig ./.flotilla/cluster.json names)
      --request-timeout  how long one request may keep retrying unavailable servers (default 30s)
  -h, --help             this help
`;

/** -n and the namespace default: there is no kubeconfig context, so "default" like a fresh kubectl. */
export const NAMESPACE_OPTION = { namespace: { type: 'string', short: 'n' } } as const satisfies Options;
export const DEFAULT_NAMESPACE = 'default';

/**
 * Rewrites `--flag=true|false` for boolean flags (kubectl's `--wait=false`),
 * which parseArgs rejects: `=true` becomes `--flag`, `=false` `--no-flag`.
 */
function normalizeBooleans(argv: string[], options: Options): string[] {
  return argv.map((a) => {
    const m = /^--([^=]+)=(true|false)$/.exec(a);
    if (!m || options[m[1]]?.type !== 'boolean') return a;
    return m[2] === 'true' ? `--${m[1]}` : `--no-${m[1]}`;
  });
}

export interface Parsed<O extends Options> {
  values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true; allowNegative: true }>>['values'];
  positionals: string[];
}

/** Parses argv for `command`; parseArgs' errors become UsageErrors in kubectl's words. */
export function parseCommand<O extends Options>(command: string, argv: string[], options: O): Parsed<O> {
  try {
    const r = parseArgs({ args: normalizeBooleans(argv, options), options, allowPositionals: true, strict: true, allowNegative: true });
    return { values: r.values, positionals: r.positionals };
  } catch (e) {
    const err = e as Error & { code?: string };
    const flag = /'(-[^']*)'/.exec(err.message)?.[1];
    switch (err.code) {
      case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
        throw new UsageError(`unknown flag: ${flag ?? err.message}`, command);
      case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
        throw new UsageError(flag ? `flag needs an argument: ${flag.split(/[ ,]/)[0]}` : err.message, command);
      default:
        throw new UsageError(err.message, command);
    }
  }
}

/**
 * Splits `KIND NAME…` / `KIND/NAME…` positionals into (kind, names) groups,
 * as kubectl accepts both `get deploy web` and `get deploy/web svc/web`.
 */
export function kindAndNames(positionals: string[], command: string): { kind: string; names: string[] }[] {
  if (!positionals.length) throw new UsageError('you must specify the type of resource', command);
  if (positionals.some((p) => p.includes('/'))) {
    const groups = new Map<string, string[]>();
    for (const p of positionals) {
      const slash = p.indexOf('/');
      if (slash <= 0 || slash === p.length - 1) {
        throw new UsageError(`there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. '${command} resource/<resource_name>' instead of '${command} resource resource/<resource_name>'`, command);
      }
      const kind = p.slice(0, slash);
      groups.set(kind, [...(groups.get(kind) ?? []), p.slice(slash + 1)]);
    }
    return [...groups].map(([kind, names]) => ({ kind, names }));
  }
  const [kinds, ...names] = positionals;
  return kinds.split(',').filter(Boolean).map((kind) => ({ kind, names }));
}

/** A duration flag ("30s", "2m", "1h30m", "500ms", or bare seconds) in ms; a UsageError when it is not one. */
export function parseDuration(v: string, flag: string): number {
  try {
    return parseDurationValue(v, flag);
  } catch (e) {
    if (e instanceof DurationError) throw new UsageError(e.message);
    throw e;
  }
}

/** A non-negative integer flag value. */
export function parseCount(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v.trim())) throw new UsageError(`invalid value "${v}" for ${flag}: expected a non-negative integer`);
  return Number(v);
}
