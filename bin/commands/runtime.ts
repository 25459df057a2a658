// What every client verb shares: connecting to the cluster, resolving kinds,
// and turning failures into kubectl's messages and exit code 1. Verbs write
// through `Io` so that they can be driven in-process as well as as a CLI.
import { ApiClient, ApiClientError, ApiConnectionError } from '../../agents/client/api.ts';
import { ConfigError, loadClientConfig } from '../../agents/client/config.ts';
import { type KindDef, resolveKind } from '../../agents/client/kinds.ts';
import { UsageError, parseDuration } from './args.ts';
import { ManifestError } from './manifests.ts';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  stdin: NodeJS.ReadableStream;
}

let pipeGuard = false;

/** `flotilla get … | head` closes the pipe early: end quietly, as kubectl does, instead of crashing on EPIPE. */
function guardPipe(): void {
  if (pipeGuard) return;
  pipeGuard = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

export const processIo: Io = {
  out: (t) => {
    guardPipe();
    process.stdout.write(t);
  },
  err: (t) => void process.stderr.write(t),
  // A getter: touching process.stdin opens it, which only `-f -` should do.
  get stdin() {
    return process.stdin;
  },
};

/** A failure the user can act on, printed as `error: message`. */
export class CliError extends Error {
  override name = 'CliError';
}

/** kubectl's wording for each kind of failure. */
export function errorMessage(e: unknown): string {
  if (e instanceof ApiClientError) return `Error from server (${e.reason}): ${e.message}`;
  if (e instanceof ApiConnectionError) return `Unable to connect to the server: ${e.message}`;
  if (e instanceof UsageError) {
    return `error: ${e.message}${e.command ? `\nSee 'flotilla ${e.command} --help' for usage.` : ''}`;
  }
  if (e instanceof CliError || e instanceof ConfigError || e instanceof ManifestError) return `error: ${e.message}`;
  return `error: ${(e as Error)?.message ?? String(e)}`;
}

/** Prints a failure and marks the process as failed, without aborting the verb. */
export function reportError(io: Io, e: unknown): void {
  io.err(`${errorMessage(e)}\n`);
  process.exitCode = 1;
}

/**
 * Runs a verb: parses its arguments, prints its usage on --help, and prints
 * any failure (bad flags included) in kubectl's words with exit code 1.
 */
export async function runVerb<P extends { values: { help?: boolean } }>(
  io: Io,
  usage: string,
  parse: () => P,
  fn: (parsed: P) => Promise<void>,
): Promise<void> {
  try {
    const parsed = parse();
    if (parsed.values.help) {
      io.out(usage.endsWith('\n') ? usage : `${usage}\n`);
      return;
    }
    await fn(parsed);
  } catch (e) {
    reportError(io, e);
  }
}

/** The connection flags every verb has. */
export interface ConnectionFlags {
  server?: string;
  kubeconfig?: string;
  'request-timeout'?: string;
}

/**
 * A client for the configured cluster; the caller closes it. --request-timeout
 * bounds how long one call keeps failing over and backing off (default 30 s).
 */
export function connect(io: Io, flags: ConnectionFlags): ApiClient {
  const cfg = loadClientConfig({ server: flags.server, kubeconfig: flags.kubeconfig });
  const deadlineMs = flags['request-timeout'] ? parseDuration(flags['request-timeout'], '--request-timeout') : undefined;
  return new ApiClient(cfg.servers, {
    credentials: cfg.credentials,
    userAgent: 'flotilla/0.1.0',
    deadlineMs,
    attemptTimeoutMs: deadlineMs,
    onWarning: (m) => io.err(`Warning: ${m}\n`),
  });
}

/** Opens a client, runs `fn`, closes the client whatever happens. */
export async function withClient<T>(io: Io, flags: ConnectionFlags, fn: (c: ApiClient) => Promise<T>): Promise<T> {
  const c = connect(io, flags);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** A kind by any of its names, or kubectl's "doesn't have a resource type" error. */
export function kindOrFail(name: string): KindDef {
  const k = resolveKind(name);
  if (!k) throw new CliError(`the server doesn't have a resource type "${name}"`);
  return k;
}
