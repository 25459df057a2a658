// `flotilla cluster status|add-member|remove-member`: the Raft membership.
// Status asks every member for its own view (role, term, commit and applied
// index), because the interesting failures — a member that lags, two members
// that each think they lead — are disagreements between members that no
// single member's answer shows.
import { ApiClient, ApiClientError, type ClusterStatus, statusFromResponse } from '../../agents/client/api.ts';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { CLUSTER_FILE, normalizeServerUrl } from '../../agents/client/config.ts';
import { ADMIN_TOKEN_FILE } from '../../api/cluster-files.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, UsageError, parseCommand, parseDuration } from './args.ts';
import { componentReports, formatComponentTable } from './components.ts';
import { formatTable, parseOutputFormat, toJson, toYaml } from './printers.ts';
import { type Io, processIo, runVerb, withClient } from './runtime.ts';

export const USAGE = `Inspect and change the membership of the Flotilla server cluster.

Usage:
  flotilla cluster status [-o json|yaml]
  flotilla cluster add-member --id ID --peer HOST:PORT [--timeout 2m] [--token T | --data DIR]
  flotilla cluster remove-member --id ID [--timeout 2m] [--token T | --data DIR]

add-member adds the server as a learner and promotes it to voter once it has
caught up with the log; start the new server with --join first.

Membership changes need a server's admin token, which each server writes to
<data dir>/admin-token (mode 0600) when it first starts, and are accepted
only from loopback. The token is taken from --token, $FLOTILLA_ADMIN_TOKEN,
--data DIR (a server's data directory), or the data directories listed in
./.flotilla/cluster.json (written by flotilla up), in that order.

Options:
  -o, --output   json or yaml instead of the table (status)
      --id       the member's id (add-member, remove-member)
      --peer     the member's Raft peer address, host:port (add-member)
      --timeout  how long a membership change may take (default 2m)
      --token    the admin token (add-member, remove-member)
      --data     a server's data directory, to read its admin-token from
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  output: { type: 'string', short: 'o' },
  id: { type: 'string' },
  peer: { type: 'string' },
  timeout: { type: 'string', default: '2m' },
  token: { type: 'string' },
  data: { type: 'string' },
} as const;

/** One member as `cluster status` reports it: the membership entry plus its own view, if it answered. */
export interface MemberReport {
  id: string;
  peer: string;
  api: string;
  voter: boolean;
  status?: Pick<ClusterStatus, 'role' | 'term' | 'leader' | 'commitIndex' | 'appliedIndex'>;
  error?: string;
}

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('cluster', argv, OPTIONS), async ({ values, positionals }) => {
    const [sub, ...extra] = positionals;
    if (extra.length) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`, 'cluster');
    const timeoutMs = parseDuration(values.timeout, '--timeout');
    switch (sub) {
      case 'status': {
        const format = parseOutputFormat(values.output, ['table', 'json', 'yaml']);
        const reports = await withClient(io, values, (c) => memberReports(c));
        // With the cluster.json of `flotilla up` at hand: every other component too.
        const components = values.server === undefined && !process.env.FLOTILLA_SERVER ? await componentReports() : undefined;
        if (format === 'json' || format === 'yaml') {
          const doc = components ? { members: reports, components } : { members: reports };
          io.out(format === 'json' ? toJson(doc) : toYaml(doc));
        } else {
          io.out(formatStatusTable(reports));
          if (components?.length) io.out(`\n${formatComponentTable(components)}`);
        }
        return;
      }
      case 'add-member': {
        if (!values.id || !values.peer) throw new UsageError('add-member needs --id ID and --peer HOST:PORT', 'cluster');
        if (!/^[^:\s]+:\d+$/.test(values.peer)) throw new UsageError(`invalid --peer "${values.peer}": expected HOST:PORT`, 'cluster');
        const token = adminToken(values);
        const st = await withClient(io, values, (c) => membership(c, 'POST', '/cluster/members', { id: values.id, peer: values.peer }, timeoutMs, token));
        const m = st.members?.find((x) => x.id === values.id);
        io.out(`member "${values.id}" added${m ? ` (${m.voter ? 'voter' : 'learner'})` : ''}\n`);
        return;
      }
      case 'remove-member': {
        if (!values.id) throw new UsageError('remove-member needs --id ID', 'cluster');
        const token = adminToken(values);
        await withClient(io, values, (c) => membership(c, 'DELETE', `/cluster/members/${encodeURIComponent(values.id!)}`, undefined, timeoutMs, token));
        io.out(`member "${values.id}" removed\n`);
        return;
      }
      default:
        throw new UsageError(sub ? `unknown cluster command "${sub}"` : 'a cluster command is required: status, add-member or remove-member', 'cluster');
    }
  });
}

/** POST/DELETE /cluster/members: waits as long as the change takes (a new member catching up). */
async function membership(c: ApiClient, method: string, path: string, body: unknown, timeoutMs: number, token: string): Promise<ClusterStatus> {
  const r = await c.raw(method, path, { body, deadlineMs: timeoutMs, timeoutMs, headers: { authorization: `Bearer ${token}` } });
  if (r.status < 200 || r.status > 299) throw new ApiClientError(statusFromResponse(r.status, r.text), method, path);
  return JSON.parse(r.text) as ClusterStatus;
}

/** The admin token: --token, $FLOTILLA_ADMIN_TOKEN, --data DIR, then the servers' data directories in .flotilla/cluster.json. */
export function adminToken(values: { token?: string; data?: string }, env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  if (values.token) return values.token.trim();
  if (env.FLOTILLA_ADMIN_TOKEN?.trim()) return env.FLOTILLA_ADMIN_TOKEN.trim();
  const read = (dir: string) => readFileSync(join(dir, ADMIN_TOKEN_FILE), 'utf8').trim();
  if (values.data) {
    try {
      return read(values.data);
    } catch (e) {
      throw new UsageError(`cannot read the admin token from ${join(values.data, ADMIN_TOKEN_FILE)}: ${(e as Error).message}`, 'cluster');
    }
  }
  const file = resolve(cwd, CLUSTER_FILE);
  let dirs: string[] = [];
  try {
    const cf = JSON.parse(readFileSync(file, 'utf8')) as { servers?: { data?: string }[] };
    dirs = (cf.servers ?? []).map((s) => s?.data).filter((d): d is string => typeof d === 'string' && !!d)
      .map((d) => resolve(dirname(file), '..', d));
  } catch {
    /* no cluster.json */
  }
  for (const d of dirs) {
    try {
      const t = read(d);
      if (t) return t;
    } catch {
      /* try the next server's */
    }
  }
  throw new UsageError(`membership changes need the admin token: pass --token, set $FLOTILLA_ADMIN_TOKEN, or --data DIR (a server's data directory, which holds ${ADMIN_TOKEN_FILE})`, 'cluster');
}

/** The membership from any server, then each member's own status (members that do not answer say why). */
export async function memberReports(c: ApiClient): Promise<MemberReport[]> {
  const st = await c.clusterStatus();
  return Promise.all((st.members ?? []).map(async (m): Promise<MemberReport> => {
    const r: MemberReport = { id: m.id, peer: m.peer, api: m.api, voter: m.voter };
    if (!m.api) return { ...r, error: 'API address not published yet' };
    const one = new ApiClient([normalizeServerUrl(m.api)], { credentials: c.credentials, deadlineMs: 2000, attemptTimeoutMs: 2000, connectTimeoutMs: 1000 });
    try {
      const s = await one.clusterStatus();
      r.status = { role: s.role, term: s.term, leader: s.leader, commitIndex: s.commitIndex, appliedIndex: s.appliedIndex };
    } catch (e) {
      r.error = (e as Error).message;
    } finally {
      await one.close();
    }
    return r;
  }));
}

/** ID, PEER, API, VOTER, ROLE (leader, follower, candidate, learner or unreachable), TERM, COMMIT, APPLIED. */
export function formatStatusTable(reports: MemberReport[]): string {
  const rows = reports.map((r) => {
    const s = r.status;
    const role = s ? s.role : 'unreachable';
    return [r.id, r.peer, r.api || '<unknown>', String(r.voter), role, s ? String(s.term) : '-', s ? String(s.commitIndex) : '-', s ? String(s.appliedIndex) : '-'];
  });
  return formatTable(['ID', 'PEER', 'API', 'VOTER', 'ROLE', 'TERM', 'COMMIT', 'APPLIED'], rows);
}
