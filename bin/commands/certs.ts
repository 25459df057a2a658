// `flotilla certs`: the certificates of a hand-built cluster, as kubeadm's
// `init phase certs` (and `init phase kubeconfig`) make them. Everything is
// created once in --dir and never overwritten: running it again with more
// clients adds their certificates, signed by the CA already there.
import { resolve } from 'node:path';
import { writeFileSync } from 'node:fs';
import { kubeconfigYaml } from '../../agents/client/kubeconfig.ts';
import { PkiError, ensureCA, ensureLeaf, ensurePeerCert, fileNameFor, isMemberName, pairPaths, peerFileName, peerSpec } from '../../agents/pki/pki.ts';
import { UsageError, parseCommand } from './args.ts';
import { parseIPv4 } from '../../api/ipv4.ts';
import { CliError, type Io, processIo, runVerb } from './runtime.ts';

export const USAGE = `Create the certificates of a cluster: a CA, the API servers' serving
certificate and client certificates (CN = user, O = groups).

Usage:
  flotilla certs --dir DIR [--server-ip IP]... [--server-dns NAME]... [--client USER[/GROUP,...]]...
                [--node NAME=IP]... [--peer MEMBER-ID]... [--api-url URL]

Files (kubeadm's layout; keys are mode 0600, nothing is ever overwritten):
  DIR/ca.crt, ca.key                the cluster CA (made once; later runs sign with it)
  DIR/apiserver.crt, apiserver.key  the API servers' serving certificate (serverAuth)
  DIR/USER.crt, USER.key            one client certificate per --client (clientAuth;
                                    ":" in the user becomes "-" in the file name)
  DIR/peer-ID.crt, peer-ID.key      one Raft peer certificate per --peer (CN flotilla-member-ID,
                                    serverAuth and clientAuth)
  DIR/USER.kubeconfig               with --api-url: a kubeconfig using the CA and that client
                                    (rewritten each run; it holds paths, not keys)
  DIR/system-node-NAME.crt, .key    one per --node: the node agent's serving certificate (SANs:
                                    its IP and NAME) and its client identity (CN system:node:NAME,
                                    O system:nodes)

Start the servers with --tls-cert-file DIR/apiserver.crt --tls-private-key-file
DIR/apiserver.key --client-ca-file DIR/ca.crt; with peer TLS each member ID
with --peer-cert-file DIR/peer-ID.crt --peer-key-file DIR/peer-ID.key
--peer-trusted-ca-file DIR/ca.crt; node agents with --tls-cert-file
DIR/system-node-NAME.crt --tls-private-key-file DIR/system-node-NAME.key
--client-ca-file DIR/ca.crt, and the servers with --kubelet-client-certificate and
--kubelet-client-key of a --client kube-apiserver-kubelet-client certificate
(the user the agents accept) and --kubelet-certificate-authority DIR/ca.crt.

Options:
      --dir         where the files go (created if missing)
      --server-ip   an IP address the API servers answer on (repeatable, or comma-separated;
                    default 127.0.0.1)
      --server-dns  a DNS name of the API servers (repeatable; localhost and the
                    kubernetes.default.svc names are always included)
      --client      USER[/GROUP,GROUP...]: a client certificate, e.g. admin/system:masters
                    or system:node:n1/system:nodes (repeatable)
      --node        NAME=IP: a node agent's certificate (repeatable)
      --peer        MEMBER-ID: a Raft peer certificate for that member (repeatable, or
                    comma-separated); a member added later gets its own by running again
      --api-url     the API's https:// address, for the kubeconfigs
      --days        lifetime of new serving and client certificates (default 365)
  -h, --help        this help
`;

const OPTIONS = {
  dir: { type: 'string' },
  'server-ip': { type: 'string', multiple: true },
  'server-dns': { type: 'string', multiple: true },
  client: { type: 'string', multiple: true },
  node: { type: 'string', multiple: true },
  peer: { type: 'string', multiple: true },
  'api-url': { type: 'string' },
  days: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The names every API server certificate carries, as kubeadm's (in-cluster clients use them). */
const DEFAULT_DNS = ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

export interface ClientSpec {
  user: string;
  groups: string[];
}

/** `USER[/GROUP,GROUP…]`: "/" because user and group names are full of ":" (system:node:n1, system:masters). */
export function parseClient(v: string): ClientSpec {
  const i = v.indexOf('/');
  const user = (i < 0 ? v : v.slice(0, i)).trim();
  const groups = i < 0 ? [] : v.slice(i + 1).split(',').map((g) => g.trim()).filter(Boolean);
  if (!user) throw new UsageError(`--client "${v}": a user name is required (USER[/GROUP,...])`, 'certs');
  if (groups.some((g) => g.includes('/'))) throw new UsageError(`--client "${v}": only one "/" may separate the user from its groups`, 'certs');
  return { user, groups };
}

export interface NodeSpec {
  name: string;
  ip: string;
}

/** `NAME=IP`: a node agent's name (its Node) and the address it serves on. */
export function parseNode(v: string): NodeSpec {
  const i = v.indexOf('=');
  const name = v.slice(0, i).trim();
  const ip = v.slice(i + 1).trim();
  if (i <= 0 || !name || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) throw new UsageError(`--node "${v}": expected NAME=IP with a node name of lower-case letters, digits, "-" and "."`, 'certs');
  if (parseIPv4(ip) === undefined) throw new UsageError(`--node "${v}": "${ip}" is not an IPv4 address`, 'certs');
  return { name, ip };
}

const list = (vs: string[] | undefined) => (vs ?? []).flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean);

export async function main(argv: string[], io: Io = processIo): Promise<void> {
  await runVerb(io, USAGE, () => parseCommand('certs', argv, OPTIONS), async ({ values, positionals }) => {
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`, 'certs');
    if (!values.dir) throw new UsageError('--dir is required', 'certs');
    const dir = resolve(values.dir);
    const days = values.days === undefined ? undefined : Number(values.days);
    if (days !== undefined && !(Number.isInteger(days) && days > 0)) throw new UsageError(`--days "${values.days}": a positive number of days`, 'certs');
    const ips = list(values['server-ip']);
    const nodes = (values.node ?? []).map(parseNode);
    const clients: (ClientSpec & { node?: NodeSpec })[] = [...(values.client ?? []).map(parseClient), ...nodes.map((n) => ({ user: `system:node:${n.name}`, groups: ['system:nodes'], node: n }))];
    const apiUrl = values['api-url'];
    if (apiUrl !== undefined && !/^https:\/\/[^/]+/.test(apiUrl)) throw new UsageError(`--api-url "${apiUrl}": an https:// address (kubectl sends no client certificate over plain HTTP)`, 'certs');
    const peers = list(values.peer);
    const files = new Set<string>();
    for (const c of clients) {
      const f = fileNameFor(c.user);
      if (f === 'ca' || f === 'apiserver' || files.has(f)) throw new UsageError(`--client "${c.user}": its file name "${f}" is taken`, 'certs');
      // A client certificate with a member's name would not open the peer port (it lacks serverAuth), but the name is the members'.
      if (isMemberName(c.user)) throw new UsageError(`--client "${c.user}": names starting with "flotilla-member-" are for peer certificates (--peer)`, 'certs');
      files.add(f);
    }
    for (const id of peers) {
      try {
        peerSpec(id);
      } catch (e) {
        throw new UsageError(`--peer "${id}": ${(e as Error).message}`, 'certs');
      }
      const f = peerFileName(id);
      if (files.has(f)) throw new UsageError(`--peer "${id}": its file name "${f}" is taken`, 'certs');
      files.add(f);
    }
    try {
      const { ca, created } = await ensureCA(dir);
      io.out(`${created ? 'created' : 'kept   '} ${pairPaths(dir, 'ca').cert}\n`);
      const server = await ensureLeaf(dir, 'apiserver', ca, {
        commonName: 'flotilla-apiserver', usages: ['server'], days,
        ips: ips.length ? ips : ['127.0.0.1'], dnsNames: [...new Set([...DEFAULT_DNS, ...list(values['server-dns'])])],
      });
      io.out(`${server.created ? 'created' : 'kept   '} ${pairPaths(dir, 'apiserver').cert}\n`);
      for (const id of peers) {
        const peer = await ensurePeerCert(dir, ca, id, days);
        io.out(`${peer.created ? 'created' : 'kept   '} ${peer.paths.cert} (raft member "${id}")\n`);
      }
      for (const c of clients) {
        const name = fileNameFor(c.user);
        const node = c.node;
        const leaf = await ensureLeaf(dir, name, ca, node
          ? { commonName: c.user, organizations: c.groups, usages: ['server', 'client'], ips: [node.ip], dnsNames: [node.name], days }
          : { commonName: c.user, organizations: c.groups, usages: ['client'], days });
        const p = pairPaths(dir, name);
        io.out(`${leaf.created ? 'created' : 'kept   '} ${p.cert} (user "${c.user}"${c.groups.length ? `, groups ${c.groups.join(', ')}` : ''})\n`);
        if (apiUrl) {
          const kc = resolve(dir, `${name}.kubeconfig`);
          // A kubeconfig holds no secret itself (it names the key file), but it says where the key is: the owner's only.
          writeFileSync(kc, kubeconfigYaml({ server: apiUrl, ca: pairPaths(dir, 'ca').cert, cert: p.cert, key: p.key, user: c.user }), { mode: 0o600 });
          io.out(`wrote   ${kc}\n`);
        }
      }
    } catch (e) {
      if (e instanceof PkiError) throw new CliError(e.message);
      throw e;
    }
  });
}
