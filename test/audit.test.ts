// Audit: every write's event on the EVENTS stream names who made it (user,
// groups), how (verb), from where (source addresses) and with what (user
// agent); refused requests (401/403) are recorded on the AUDIT stream by the
// server that refused them, at the level the audit policy file chooses.
// (The real kubectl sends no bearer token over plain HTTP, so its writes
// here would be anonymous: it joins this test once the API serves HTTPS.)
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { connectNats } from '../agents/informer/index.ts';
import { decodeEvent, subjectFor } from '../api/events.ts';
import { AUDIT_STREAM } from '../apiserver/audit/refused.ts';
import { parseAuditPolicy } from '../apiserver/audit/policy.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { startFlotilla, tempDir, waitFor } from '../harness/procs.ts';

const ADMIN = 'admin-token-0123456789';
const ALICE = 'alice-token-0123456789';
const BOB = 'bob-token-0123456789';

const POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
# Nothing about bob.
- level: None
  users: [bob]
# ConfigMap writes with their body.
- level: Request
  verbs: [create, update, patch]
  resources:
  - group: ""
    resources: [configmaps]
# Everything else: who and what.
- level: Metadata
`;

t.test('audit', async (t) => {
  const work = tempDir('audit');
  const tokens = join(work, 'tokens.csv');
  writeFileSync(tokens, [`${ADMIN},admin,1,"system:masters"`, `${ALICE},alice,2,"devs,qa"`, `${BOB},bob,3`, ''].join('\n'), { mode: 0o600 });
  const policy = join(work, 'policy.yaml');
  writeFileSync(policy, POLICY);
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, {
    adminToken: ADMIN,
    args: ['--nats', nats.url, '--authorization-mode', 'RBAC', '--token-auth-file', tokens, '--audit-policy-file', policy],
  });
  t.teardown(() => cluster.stop());
  const url = cluster.urls[0];
  const nc = await connectNats(nats.url, 'audit-test');
  t.teardown(() => nc.close());
  const jsm = await nc.jetstreamManager();

  const call = async (token: string | undefined, method: string, path: string, body?: unknown, extra: Record<string, string> = {}) => {
    const r = await request(`${url}${path}`, {
      method, body: body === undefined ? undefined : JSON.stringify(body),
      headers: { 'content-type': 'application/json', 'user-agent': 'audit-test/1.0 (tap)', ...(token ? { authorization: `Bearer ${token}` } : {}), ...extra },
    });
    return { code: r.statusCode, body: await r.body.text() };
  };
  const cm = (name: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { k: name } });
  const eventOf = async (name: string) => waitFor(`the event of ${name}`, async () => {
    try {
      const m = await jsm.streams.getMessage('EVENTS', { last_by_subj: subjectFor('', 'configmaps', 'default', name) });
      return decodeEvent(m.data);
    } catch {
      return undefined;
    }
  }, 20_000);

  await t.test('a write\'s event names the user, groups, verb, source and user agent', async (t) => {
    const r = await call(ADMIN, 'POST', '/api/v1/namespaces/default/configmaps', cm('by-admin'), { 'x-forwarded-for': '127.0.0.77' });
    t.equal(r.code, 201, r.body);
    const e = await eventOf('by-admin');
    t.equal(e.user, 'admin');
    t.same(e.groups, ['system:masters', 'system:authenticated']);
    t.equal(e.verb, 'create');
    t.same(e.sourceIPs, ['127.0.0.77', '127.0.0.1'], 'X-Forwarded-For first, the connection\'s peer last');
    t.equal(e.userAgent, 'audit-test/1.0 (tap)');
    const p = await call(ADMIN, 'PATCH', '/api/v1/namespaces/default/configmaps/by-admin', { data: { k: 'v2' } }, { 'content-type': 'application/merge-patch+json' });
    t.equal(p.code, 200, p.body);
    const e2 = await waitFor('the patch event', async () => { const x = await eventOf('by-admin'); return x.verb === 'patch' && x; });
    t.equal(e2.user, 'admin');
    t.same(e2.sourceIPs, ['127.0.0.1']);
  });

  await t.test('refused requests are recorded on the AUDIT stream at the policy\'s level', async (t) => {
    // In order: alice's refused create (Request), bob's (None: not recorded), alice's refused read of a Secret (Metadata), a bad token (401, Metadata).
    let r = await call(ALICE, 'POST', '/api/v1/namespaces/default/configmaps', cm('by-alice'));
    t.equal(r.code, 403, r.body);
    t.match(JSON.parse(r.body).message, 'configmaps is forbidden: User "alice" cannot create resource "configmaps" in API group "" in the namespace "default"');
    r = await call(BOB, 'POST', '/api/v1/namespaces/default/configmaps', cm('by-bob'));
    t.equal(r.code, 403, r.body);
    r = await call(ALICE, 'GET', '/api/v1/namespaces/default/secrets/db');
    t.equal(r.code, 403, r.body);
    r = await call('not-a-token', 'GET', '/api/v1/namespaces');
    t.equal(r.code, 401, r.body);
    // The harness' own requests before the default policy was in place were refused and recorded too: ours are told by their user agent.
    // Records go out in order, so once the last of ours is there, bob's would be too.
    const ours = async () => {
      const out: { subject: string; ev: Record<string, any> }[] = [];
      let info;
      try {
        info = await jsm.streams.info(AUDIT_STREAM);
      } catch {
        return out;
      }
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(AUDIT_STREAM, { seq });
        const ev = JSON.parse(Buffer.from(m.data).toString()) as Record<string, any>;
        if (ev.userAgent === 'audit-test/1.0 (tap)') out.push({ subject: m.subject, ev });
      }
      return out;
    };
    const records = await waitFor('our three records on AUDIT', async () => { const x = await ours(); return x.length >= 3 && x; }, 20_000);
    t.equal(records.length, 3, 'bob\'s refusal (level None) is not recorded');
    const [create, secret, unauth] = records;
    t.equal(create.subject, 'audit.refused.403.s1');
    t.match(create.ev, {
      kind: 'Event', apiVersion: 'audit.k8s.io/v1', level: 'Request', stage: 'ResponseComplete', verb: 'create',
      requestURI: '/api/v1/namespaces/default/configmaps',
      user: { username: 'alice', groups: ['devs', 'qa', 'system:authenticated'] }, sourceIPs: ['127.0.0.1'], userAgent: 'audit-test/1.0 (tap)',
      objectRef: { resource: 'configmaps', namespace: 'default', apiGroup: '', apiVersion: 'v1' },
      responseStatus: { status: 'Failure', code: 403, reason: 'Forbidden' },
      requestObject: { kind: 'ConfigMap', metadata: { name: 'by-alice' }, data: { k: 'by-alice' } },
      annotations: { 'authorization.k8s.io/decision': 'forbid' },
    });
    t.notOk('responseObject' in create.ev, 'Request level: no response object');
    t.match(create.ev.auditID, /^[0-9a-f-]{36}$/);
    t.match(secret.ev, { level: 'Metadata', verb: 'get', user: { username: 'alice' }, objectRef: { resource: 'secrets', name: 'db', namespace: 'default' } });
    t.notOk('requestObject' in secret.ev, 'Metadata level: no body');
    t.equal(unauth.subject, 'audit.refused.401.s1');
    t.match(unauth.ev, { level: 'Metadata', verb: 'list', user: {}, responseStatus: { code: 401, reason: 'Unauthorized' } });
    t.notOk(records.some((x) => x.ev.user?.username === 'bob'), 'nothing about bob');
    const metrics = await (await request(`${url}/metrics`, { headers: cluster.authHeaders })).body.text();
    t.match(metrics, /flotilla_audit_refused_total\{code="403",level="None"\} 1/, 'the suppressed refusal is counted');
  });

  await t.test('a bad policy file stops the server with a clear error', async (t) => {
    const bad: [string, string, RegExp][] = [
      ['bad level', 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n', /rules\[0\]\.level: must be one of None, Metadata, Request, RequestResponse/],
      ['no rules', 'apiVersion: audit.k8s.io/v1\nkind: Policy\n', /at least one rule/],
      ['both kinds', 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  nonResourceURLs: [/healthz]\n  resources: [{group: ""}]\n', /both regular resources and non-resource URLs/],
      ['unknown field', 'apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: None\n  user: [x]\n', /unknown field "user"/],
      ['wrong kind', 'apiVersion: audit.k8s.io/v1\nkind: AuditPolicy\nrules: []\n', /kind must be Policy/],
    ];
    for (const [what, text, expected] of bad) t.throws(() => parseAuditPolicy(text), expected, `${what}: refused`);
    const f = join(work, 'bad-policy.yaml');
    writeFileSync(f, bad[0][1]);
    const log = join(work, 'bad-policy.log');
    const p = startFlotilla(['server', '--id', 'x1', '--peers', 'x1=127.0.0.1:1', '--api', '127.0.0.1:1', '--data', join(work, 'bad-data'), '--nats', nats.url, '--audit-policy-file', f], { logFile: log });
    const code = await p.exited;
    const out = readFileSync(log, 'utf8');
    t.not(code, 0, 'the server refuses to start');
    t.match(out, bad[0][2], 'the reason is given');
    t.match(out, f, 'the file is named');
  });
});
