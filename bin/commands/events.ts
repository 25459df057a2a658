// `flotilla events`: the audit stream — every committed API write, in Raft
// order, read straight from the JetStream stream EVENTS (not through the
// API servers, so it works while they are down and costs them nothing).
//
// Filters by kind and namespace are subject filters (the server does them);
// --user is applied here. Without --follow the command prints what the
// stream holds now and exits; with it, it keeps printing new events.
// --durable NAME reads through a durable consumer that acknowledges what was
// printed, so the next run with the same name continues after it (an
// auditor's bookmark, kept by NATS).
import { pathToFileURL } from 'node:url';
import pino from 'pino';
import { AckPolicy, type ConsumerInfo, DeliverPolicy, type JetStreamManager, type JsMsg, type NatsConnection, connect, nanos } from 'nats';
import { resolveNatsUrl } from '../../agents/informer/nats.ts';
import { EventReader, type ReaderStart, StreamGapError, headerIndex, resumeSeq } from '../../agents/informer/stream.ts';
import { type ApiEvent, STREAM, decodeEvent, filterSubject } from '../../api/events.ts';
import { UsageError, parseCommand, parseDuration } from './args.ts';
import { StreamingTable, parseOutputFormat } from './printers.ts';
import { CliError, type Io, kindOrFail, processIo, runVerb } from './runtime.ts';
import { natsServerOptions, redactNatsUrls } from '../../api/nats-url.ts';

export const USAGE = `Print the audit stream: every committed API write, oldest first, read from
the JetStream stream EVENTS.

Usage:
  flotilla events [--follow] [--kind KIND] [-n NAMESPACE] [--user USER] [--since INDEX|DURATION|TIME] [--durable NAME] [-o json]

Options:
  -f, --follow       keep printing new events (Ctrl-C to stop)
      --kind         only this kind (pods, deploy, configmaps, leases.coordination.k8s.io…)
  -n, --namespace    only this namespace (default: every namespace and cluster-scoped objects)
      --user         only writes by this user (e.g. system:anonymous)
      --since        INDEX: events after this Raft index (a resourceVersion);
                     DURATION (10m, 2h): events of that last stretch of time;
                     TIME (RFC 3339): events from then on
      --durable      read through the durable consumer NAME: the next run with the
                     same name resumes after what this one printed
  -o, --output       json: one JSON object per line (the event, with its object parsed)
      --no-headers   omit the header line
      --nats         NATS URL[,URL…] (default: $FLOTILLA_NATS, then ./.flotilla/cluster.json)
  -h, --help         this help

Columns: INDEX (Raft index = resourceVersion), TIME, USER, VERB, KIND, NAMESPACE/NAME.
`;

const OPTIONS = {
  follow: { type: 'boolean', short: 'f' },
  kind: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  user: { type: 'string' },
  since: { type: 'string' },
  durable: { type: 'string' },
  output: { type: 'string', short: 'o' },
  headers: { type: 'boolean', default: true },
  nats: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** --since: an index, a duration back from now, or a point in time. */
export function parseSince(v: string, now = Date.now()): { index: number } | { time: Date } {
  const s = v.trim();
  if (/^\d+$/.test(s)) return { index: Number(s) };
  if (/^\d{4}-\d{2}-\d{2}T/.test(s)) {
    const t = Date.parse(s);
    if (Number.isNaN(t)) throw new UsageError(`invalid --since "${v}": not an RFC 3339 time`, 'events');
    return { time: new Date(t) };
  }
  try {
    return { time: new Date(now - parseDuration(s, '--since')) };
  } catch {
    throw new UsageError(`invalid --since "${v}": expected a Raft index (1234), a duration (10m, 2h) or an RFC 3339 time`, 'events');
  }
}

/** An event as -o json prints it: the decoded event with its object parsed. */
export function eventRecord(e: ApiEvent): Record<string, unknown> {
  let object: unknown = e.object;
  try {
    object = JSON.parse(e.object);
  } catch {
    /* keep the text */
  }
  return { ...e, object };
}

export const HEADER = ['INDEX', 'TIME', 'USER', 'VERB', 'KIND', 'NAMESPACE/NAME'] as const;

export function eventRow(e: ApiEvent): string[] {
  return [String(e.index), e.timestamp || '<unknown>', e.user || '<none>', e.verb || '<none>', e.kind || e.resource, e.namespace ? `${e.namespace}/${e.name}` : e.name];
}

/** Buffers table rows so that each flush is aligned (one flush for a whole non-follow run). */
class Printer {
  private table?: StreamingTable;
  private rows: string[][] = [];
  count = 0;

  constructor(
    private readonly io: Io,
    private readonly json: boolean,
    private readonly headers: boolean,
  ) {}

  add(e: ApiEvent): void {
    this.count++;
    if (this.json) {
      this.io.out(`${JSON.stringify(eventRecord(e))}\n`);
      return;
    }
    this.rows.push(eventRow(e));
    if (this.rows.length >= 1000) this.flush();
  }

  flush(): void {
    if (this.json || !this.rows.length) return;
    const rows = this.rows;
    this.rows = [];
    if (!this.table) {
      this.table = new StreamingTable(this.headers ? HEADER : undefined, rows);
      this.io.out(this.table.start(rows));
    } else {
      this.io.out(rows.map((r) => this.table!.row(r)).join(''));
    }
  }
}

interface Settings {
  subject: string;
  user?: string;
  since?: { index: number } | { time: Date };
  follow: boolean;
  durable?: string;
  printer: Printer;
  io: Io;
  signal?: AbortSignal;
}

export async function main(argv: string[], io: Io = processIo, opts: { signal?: AbortSignal } = {}): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('events', argv, OPTIONS), async ({ values, positionals }) => {
    if (positionals.length) throw new UsageError(`unexpected arguments: ${positionals.join(' ')}`, 'events');
    const format = parseOutputFormat(values.output, ['table', 'json']);
    const kind = values.kind ? kindOrFail(values.kind) : undefined;
    if (values.namespace !== undefined && !values.namespace) throw new UsageError('--namespace is empty', 'events');
    if (kind && values.namespace && !kind.namespaced) throw new CliError(`${kind.plural} are cluster-scoped: -n does not apply`);
    if (values.durable !== undefined && !/^[A-Za-z0-9_-]+$/.test(values.durable)) {
      throw new UsageError(`invalid --durable "${values.durable}": use letters, digits, - and _`, 'events');
    }
    const s: Settings = {
      subject: filterSubject(kind?.group, kind?.plural, values.namespace),
      user: values.user,
      since: values.since !== undefined ? parseSince(values.since) : undefined,
      follow: !!values.follow,
      durable: values.durable,
      printer: new Printer(io, format === 'json', values.headers !== false),
      io,
      signal: opts.signal,
    };
    const url = resolveNatsUrl(values.nats);
    let nc: NatsConnection;
    try {
      nc = await connect({
        ...natsServerOptions(url), name: 'flotilla-events', timeout: 5000,
        maxReconnectAttempts: s.follow ? -1 : 10, reconnectTimeWait: 500,
      });
    } catch (e) {
      throw new CliError(`cannot connect to NATS at ${redactNatsUrls(url)}: ${(e as Error).message}`);
    }
    try {
      const jsm = await nc.jetstreamManager();
      const info = await jsm.streams.info(STREAM).catch((e: Error) => {
        if (/stream not found/i.test(e.message)) throw new CliError(`NATS at ${redactNatsUrls(url)} has no stream ${STREAM}: no server publishes events there (servers need --nats ${redactNatsUrls(url)})`);
        throw e;
      });
      if (s.durable) await readDurable(nc, jsm, s, info.state.last_seq);
      else await readEphemeral(nc, s, info.state.last_seq);
      s.printer.flush();
      if (!s.follow && !s.printer.count && format !== 'json') io.err('No events found.\n');
    } finally {
      await nc.close().catch(() => {});
    }
  });
}

/** The event in a message if it decodes and passes --user; warns about the ones that do not decode. */
function eventOf(m: JsMsg, s: Settings): ApiEvent | undefined {
  let e: ApiEvent;
  try {
    e = decodeEvent(m.data);
  } catch (err) {
    s.io.err(`warning: skipping message ${m.seq} on ${m.subject}: ${(err as Error).message}\n`);
    return undefined;
  }
  const id = headerIndex(m.headers);
  if (id !== undefined && id !== e.index) {
    s.io.err(`warning: message ${m.seq} on ${m.subject}: Nats-Msg-Id ${id} but event index ${e.index}\n`);
  }
  if (s.user !== undefined && e.user !== s.user) return undefined;
  return e;
}

/** Stops on SIGINT/SIGTERM (follow) or the caller's signal. */
function onStop(s: Settings, stop: () => void): () => void {
  const handler = () => stop();
  s.signal?.addEventListener('abort', handler, { once: true });
  if (s.signal?.aborted) stop();
  if (s.follow) {
    process.once('SIGINT', handler);
    process.once('SIGTERM', handler);
  }
  return () => {
    s.signal?.removeEventListener('abort', handler);
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

async function readEphemeral(nc: NatsConnection, s: Settings, lastSeqAtStart: number): Promise<void> {
  if (!s.follow && lastSeqAtStart === 0) return; // an empty stream
  let start: ReaderStart;
  if (s.since && 'index' in s.since) start = { after: { index: s.since.index, seq: 0 } };
  else if (s.since && s.since.time.getTime() > Date.now()) {
    // A time still to come (JetStream would deliver from the start): nothing yet.
    if (!s.follow) return;
    start = { after: { index: 0, seq: lastSeqAtStart } };
  } else if (s.since) start = { time: s.since.time };
  else start = { all: true };
  // $FLOTILLA_LOG_LEVEL=debug|info shows what the reader does (consumer resets and why) on stderr.
  const level = process.env.FLOTILLA_LOG_LEVEL;
  const reader: EventReader = new EventReader({
    nc, filterSubject: s.subject, start, namePrefix: 'flotilla-events',
    logger: level ? pino({ name: 'flotilla-events', level }, pino.destination(2)) : undefined,
    // Without --follow: what the stream held when we started, then stop.
    until: s.follow ? undefined : lastSeqAtStart,
    onMessage(m) {
      const e = eventOf(m, s);
      if (e) s.printer.add(e);
    },
    onCaughtUp() {
      s.printer.flush();
    },
    onGap(err: StreamGapError) {
      s.printer.flush();
      s.io.err(`warning: ${err.message}; continuing with the oldest event still stored\n`);
    },
  });
  const off = onStop(s, () => reader.stop());
  try {
    await reader.run();
  } finally {
    off();
  }
}

async function readDurable(nc: NatsConnection, jsm: JetStreamManager, s: Settings, lastSeqAtStart: number): Promise<void> {
  const name = s.durable!;
  let ci = await jsm.consumers.info(STREAM, name).catch((e: Error) => {
    if (/consumer not found/i.test(e.message)) return undefined;
    throw e;
  });
  if (ci) {
    if (ci.config.filter_subject !== s.subject) {
      throw new CliError(`durable consumer "${name}" reads ${ci.config.filter_subject || 'every subject'}, not ${s.subject}: repeat its --kind and -n, or pick another --durable name`);
    }
    if (s.since) s.io.err(`warning: --since is ignored: "${name}" resumes after the last event it acknowledged\n`);
    // delivered.stream_seq is how far the consumer has scanned the stream (past
    // messages that do not match its filter too): removed sequences after it
    // were never seen.
    const scanned = ci.delivered.stream_seq;
    const info = await jsm.streams.info(STREAM);
    if (scanned > 0 && info.state.first_seq > scanned + 1) {
      s.io.err(`warning: the stream no longer holds sequences ${scanned + 1}-${info.state.first_seq - 1}, removed before "${name}" read them; matching events among them were not seen\n`);
    }
  } else {
    let policy: Record<string, unknown> = { deliver_policy: DeliverPolicy.All };
    if (s.since && 'index' in s.since) {
      let seq: number;
      try {
        seq = (await resumeSeq(jsm, { index: s.since.index, seq: 0 })).seq;
      } catch (e) {
        if (!(e instanceof StreamGapError)) throw e;
        s.io.err(`warning: ${e.message}; starting with the oldest event still stored\n`);
        seq = (await jsm.streams.info(STREAM)).state.first_seq;
      }
      policy = { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: seq };
    } else if (s.since && s.since.time.getTime() > Date.now()) {
      policy = { deliver_policy: DeliverPolicy.New };
    } else if (s.since) {
      policy = { deliver_policy: DeliverPolicy.StartTime, opt_start_time: s.since.time.toISOString() };
    }
    ci = await jsm.consumers.add(STREAM, {
      ...policy, durable_name: name, filter_subject: s.subject, ack_policy: AckPolicy.All,
      ack_wait: nanos(30_000), max_ack_pending: 10_000,
    });
  }
  // Without --follow, done once the consumer has scanned past what the stream
  // held when we started and everything it handed out is acknowledged
  // (judged from positions: pending counts are not exact for filtered consumers).
  const finished = (c: ConsumerInfo) => c.delivered.stream_seq >= lastSeqAtStart && c.num_ack_pending === 0;
  if (!s.follow && (lastSeqAtStart === 0 || finished(ci))) return;
  const consumer = await nc.jetstream().consumers.get(STREAM, name);
  const msgs = await consumer.consume({ max_messages: 256, expires: 5000 });
  const off = onStop(s, () => msgs.stop());
  let last: JsMsg | undefined;
  let unacked = 0;
  // Printed, then acknowledged (AckAll: the last one covers all before it), so
  // a crash in between repeats events rather than losing them.
  const commit = async () => {
    const m = last;
    const n = unacked;
    unacked = 0;
    s.printer.flush();
    if (m && n) await m.ackAck({ timeout: 5000 });
  };
  let checking = false;
  const idle = setInterval(async () => {
    if (checking) return;
    checking = true;
    try {
      await commit();
      if (!s.follow && finished(await consumer.info())) msgs.stop();
    } catch {
      /* next time */
    } finally {
      checking = false;
    }
  }, s.follow ? 1000 : 250);
  try {
    for await (const m of msgs) {
      if (!s.follow && m.seq > lastSeqAtStart) {
        // Not there when we started: leave it for the next run, right away.
        m.nak();
        break;
      }
      const e = eventOf(m, s);
      if (e) s.printer.add(e);
      last = m;
      unacked++;
      if (m.info.pending === 0 || unacked >= 256) await commit();
      if (!s.follow && m.seq === lastSeqAtStart) break;
    }
    await commit();
  } finally {
    clearInterval(idle);
    off();
    msgs.stop();
  }
}

// Runnable on its own too: node --import=tsx bin/commands/events.ts [flags]
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main(process.argv.slice(2));
