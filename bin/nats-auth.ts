// NATS users for a cluster that `flotilla up` runs. Without them anyone on
// the machine could publish a forged event on `events.>` or delete the
// stream. Three users, each with only what its role needs:
//
//   flotilla-server    the API servers: publish the stream (and create it),
//                      receive node usage reports — everything;
//   flotilla-consumer  controllers, scheduler, DNS, ingress and users'
//                      `flotilla events`: read the EVENTS stream and create
//                      their own consumers, publish nothing else;
//   flotilla-agent     node agents: a consumer that also publishes usage
//                      reports on `metrics.pods.>`.
//
// Passwords are random, made once per cluster directory (0600), and travel in
// the NATS URLs handed to each process (api/nats-url.ts strips them before
// connecting). Per-node subjects would need a user per node: an agent may
// publish any node's usage report (known limit, see the README).
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { STREAM } from '../api/events.ts';
import { METRICS_SUBJECT_WILDCARD } from '../api/metrics.ts';

export type NatsRole = 'server' | 'consumer' | 'agent';
export type NatsUsers = Record<NatsRole, string>;
const USER: Record<NatsRole, string> = { server: 'flotilla-server', consumer: 'flotilla-consumer', agent: 'flotilla-agent' };

/** The users' passwords, made once in `file` (owner-only) and kept across restarts. */
export function ensureNatsUsers(file: string): NatsUsers {
  if (existsSync(file)) {
    const u = JSON.parse(readFileSync(file, 'utf8')) as Partial<NatsUsers>;
    if (u.server && u.consumer && u.agent) return u as NatsUsers;
    throw new Error(`${file}: not a NATS users file (delete it to make a new one; every NATS server and client must then restart)`);
  }
  const users: NatsUsers = { server: secret(), consumer: secret(), agent: secret() };
  writeFileSync(file, `${JSON.stringify(users, null, 2)}\n`, { mode: 0o600 });
  return users;
}

const secret = () => randomBytes(18).toString('base64url');

/** What a stream reader may publish: JetStream API calls on EVENTS only, acks and flow control. */
const CONSUMER_PUBLISH = [
  '$JS.API.INFO', `$JS.API.STREAM.INFO.${STREAM}`, '$JS.API.STREAM.NAMES', '$JS.API.STREAM.LIST',
  `$JS.API.STREAM.MSG.GET.${STREAM}`, `$JS.API.DIRECT.GET.${STREAM}`, `$JS.API.DIRECT.GET.${STREAM}.>`,
  `$JS.API.CONSUMER.CREATE.${STREAM}`, `$JS.API.CONSUMER.CREATE.${STREAM}.>`, `$JS.API.CONSUMER.DURABLE.CREATE.${STREAM}.>`,
  `$JS.API.CONSUMER.INFO.${STREAM}.>`, `$JS.API.CONSUMER.DELETE.${STREAM}.>`, `$JS.API.CONSUMER.MSG.NEXT.${STREAM}.>`,
  `$JS.API.CONSUMER.NAMES.${STREAM}`, `$JS.API.CONSUMER.LIST.${STREAM}`,
  `$JS.ACK.${STREAM}.>`, `$JS.FC.${STREAM}.>`,
];

/** The `authorization` block of a nats-server configuration. */
export function natsAuthorization(u: NatsUsers): string {
  const list = (xs: string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
  const user = (role: NatsRole, publish: string[], subscribe: string[]) =>
    `    { user: ${JSON.stringify(USER[role])}, password: ${JSON.stringify(u[role])}, permissions: { publish: { allow: ${list(publish)} }, subscribe: { allow: ${list(subscribe)} } } }`;
  return [
    'authorization {',
    '  users: [',
    user('server', ['>'], ['>']),
    user('consumer', CONSUMER_PUBLISH, ['_INBOX.>']),
    user('agent', [...CONSUMER_PUBLISH, METRICS_SUBJECT_WILDCARD], ['_INBOX.>']),
    '  ]',
    '}',
  ].join('\n');
}

/** "nats://user:password@host:port,…" for a role. */
export function natsUrlFor(role: NatsRole, users: NatsUsers, hostPorts: string[]): string {
  const cred = `${encodeURIComponent(USER[role])}:${encodeURIComponent(users[role])}`;
  return hostPorts.map((hp) => `nats://${cred}@${hp}`).join(',');
}
