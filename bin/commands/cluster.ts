// `flotilla cluster status|add-member|remove-member`: the Raft membership.
// Status asks every member for its own view (role, term, commit and applied
// index), because the interesting failures — a member that lags, two members
// that each think they lead — are disagreements between members that no
// single member's answer shows.
import { ApiClient, ApiClientError, type ClusterStatus, statusFromResponse } from '../../agents/client/api.ts';
import { normalizeServerUrl } from '../../agents/client/config.ts';
import { COMMON_OPTIONS, CONNECTION_HELP, UsageError, parseCommand, parseDuration } from './args.ts';
import { formatTable, parseOutputFormat, toJson, toYaml } from './printers.ts';
import { type Io, processIo, runVerb, withClient } from './runtime.ts';

export const USAGE = `Inspect and change the membership of the Flotilla server cluster.

Usage:
  flotilla cluster status [-o json|yaml]
  flotilla cluster add-member --id ID --peer HOST:PORT [--timeout 2m]
  flotilla cluster remove-member --id ID [--timeout 2m]

add-member adds the server as a learner and promotes it to voter once it has
caught up with the log; start the new server with --join first.

Options:
  -o, --output   json or yaml instead of the table (status)
      --id       the member's id (add-member, remove-member)
      --peer     the member's Raft peer address, host:port (add-member)
      --timeout  how long a membership change may take (default 2m)
${CONNECTION_HELP}`;

const OPTIONS = {
  ...COMMON_OPTIONS,
  output: { type: 'string', short: 'o' },
  id: { type: 'string' },
  peer: { type: 'string' },
  timeout: { type: 'string', default: '2m' },
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
        if (format === 'json' || format === 'yaml') {
          const doc = { members: reports };
          io.out(format === 'json' ? toJson(doc) : toYaml(doc));
        } else {
          io.out(formatStatusTable(reports));
        }
        return;
      }
      case 'add-member': {
        if (!values.id || !values.peer) throw new UsageError('add-member needs --id ID and --peer HOST:PORT', 'cluster');
        if (!/^[^:\s]+:\d+$/.test(values.peer)) throw new UsageError(`invalid --peer "${values.peer}": expected HOST:PORT`, 'cluster');
        const st = await withClient(io, values, (c) => membership(c, 'POST', '/cluster/members', { id: values.id, peer: values.peer }, timeoutMs));
        const m = st.members?.find((x) => x.id === values.id);
        io.out(`member "${values.id}" added${m ? ` (${m.voter ? 'voter' : 'learner'})` : ''}\n`);
        return;
      }
      case 'remove-member': {
        if (!values.id) throw new UsageError('remove-member needs --id ID', 'cluster');
        await withClient(io, values, (c) => membership(c, 'DELETE', `/cluster/members/${encodeURIComponent(values.id!)}`, undefined, timeoutMs));
        io.out(`member "${values.id}" removed\n`);
        return;
      }
      default:
        throw new UsageError(sub ? `unknown cluster command "${sub}"` : 'a cluster command is required: status, add-member or remove-member', 'cluster');
    }
  });
}

/** POST/DELETE /cluster/members: waits as long as the change takes (a new member catching up). */
async function membership(c: ApiClient, method: string, path: string, body: unknown, timeoutMs: number): Promise<ClusterStatus> {
  const r = await c.raw(method, path, { body, deadlineMs: timeoutMs, timeoutMs });
  if (r.status < 200 || r.status > 299) throw new ApiClientError(statusFromResponse(r.status, r.text), method, path);
  return JSON.parse(r.text) as ClusterStatus;
}

/** The membership from any server, then each member's own status (members that do not answer say why). */
export async function memberReports(c: ApiClient): Promise<MemberReport[]> {
  const st = await c.clusterStatus();
  return Promise.all((st.members ?? []).map(async (m): Promise<MemberReport> => {
    const r: MemberReport = { id: m.id, peer: m.peer, api: m.api, voter: m.voter };
    if (!m.api) return { ...r, error: 'API address not published yet' };
    const one = new ApiClient([normalizeServerUrl(m.api)], { deadlineMs: 2000, attemptTimeoutMs: 2000, connectTimeoutMs: 1000 });
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
