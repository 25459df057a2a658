// Leader election on a Lease (agents/leaderelection):
// - the pure parts: MicroTime, expiry judged by local observation time (never
//   by reading renewTime as a clock), option validation;
// - against a small fake Lease API (exact control of answers): a 504 on an
//   update is a failed renewal that the next try repairs by re-reading;
//   updates that keep failing or hang end leadership within renewDeadline of
//   the last good renewal; a lease taken by someone else ends it at once;
// - against a real flotilla server: exactly one of three electors leads (a
//   timeline of every signal, checked continuously); a clean stop aborts the
//   signal, waits for the leader's work, releases, and a standby takes over
//   within a retry period or two; a leader cut off from the API (a TCP proxy
//   that swallows everything) aborts within renewDeadline and a standby
//   takes over only after the lease duration; leaseTransitions, acquireTime
//   and renewTime as they evolve; the metrics.
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { type AddressInfo, type Socket, connect, createServer as createTcpServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import client from 'prom-client';
import t from 'tap';
import { ApiClient } from '../agents/client/api.ts';
import {
  JITTER_FACTOR, LeaderElectionConfigError, LeaderElector, type LeaderElectorOptions, type LeaseObject, LeaseObservation,
  LeadershipLostError, formatMicroTime, leaderElectionMetrics, parseMicroTime, recordFromLease, resolveOptions,
} from '../agents/leaderelection/index.ts';
import { silentLogger } from '../agents/informer/stream.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { sleep, waitFor } from '../harness/procs.ts';

const now = () => performance.now();
const MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

// ------------------------------------------------------------------ pure parts

t.test('MicroTime: RFC 3339, UTC, exactly six fractional digits', async (t) => {
  const ms = Date.UTC(2026, 11, 4, 20, 39, 42, 123);
  t.equal(formatMicroTime(ms), '2026-12-04T20:39:42.123000Z');
  t.equal(formatMicroTime(ms + 0.456), '2026-12-04T20:39:42.123456Z');
  t.equal(formatMicroTime(Date.UTC(2026, 0, 1)), '2026-01-01T00:00:00.000000Z');
  t.match(formatMicroTime(Date.now()), MICRO);
  t.equal(parseMicroTime('2026-12-04T20:39:42.123456Z'), ms + 0.456);
  t.equal(parseMicroTime('2026-12-04T21:39:42.123456+01:00'), ms + 0.456, 'offsets');
  t.equal(parseMicroTime('2026-12-04T20:39:42Z'), ms - 123, 'no fraction');
  t.equal(parseMicroTime(formatMicroTime(ms + 0.001)), ms + 0.001, 'round trip');
  t.ok(Number.isNaN(parseMicroTime('yesterday')));
  t.throws(() => formatMicroTime(Number.NaN));
});

t.test('expiry is judged by when the record was seen to change, on the local clock', async (t) => {
  const rec = (holder: string, renew: string, dur = 10) =>
    recordFromLease({ spec: { holderIdentity: holder, leaseDurationSeconds: dur, renewTime: renew, acquireTime: renew, leaseTransitions: 3 } });
  const o = new LeaseObservation();
  t.notOk(o.validAt(0), 'nothing observed: not valid');
  t.notOk(o.heldByOther('me', 0));

  // A renewTime from long ago (a holder whose clock is far behind) is still a fresh lease.
  t.ok(o.observe(rec('a', '1999-01-01T00:00:00.000000Z'), 1000), 'a first record is a change');
  t.equal(o.at, 1000);
  t.ok(o.heldByOther('me', 1000 + 9_999), 'valid until a whole lease duration after it was seen');
  t.notOk(o.heldByOther('me', 1000 + 10_000), 'expired once the duration has passed on our clock');
  t.notOk(o.heldByOther('a', 5000), 'never held by "another" for its own holder');

  // The same record read again does not refresh the observation…
  t.notOk(o.observe(rec('a', '1999-01-01T00:00:00.000000Z'), 8000), 'same record: not a change');
  t.equal(o.at, 1000, 'the observation time stays');
  t.notOk(o.validAt(11_000));
  // …a renewal (whatever time it claims, even one in the far future) does.
  t.ok(o.observe(rec('a', '2999-01-01T00:00:00.000000Z'), 12_000), 'renewTime changed');
  t.equal(o.at, 12_000);
  t.ok(o.heldByOther('me', 21_999));
  t.notOk(o.heldByOther('me', 22_000), 'a renewTime in the future does not extend the lease');

  // A released lease (no holder) is free at once; a record without a duration is never valid.
  o.observe({ ...rec('', '2999-01-01T00:00:01.000000Z'), leaseDurationSeconds: 1 }, 30_000);
  t.notOk(o.heldByOther('me', 30_001), 'released: free');
  o.observe(rec('b', '2999-01-01T00:00:02.000000Z', 0), 40_000);
  t.notOk(o.validAt(40_000), 'no duration: not valid');
  o.reset();
  t.equal(o.holder, '');

  t.same(recordFromLease({ spec: {} }), { holderIdentity: '', leaseDurationSeconds: 0, leaseTransitions: 0 }, 'missing fields read as client-go reads nil');
});

t.test('options: defaults and validation (client-go\'s checks)', async (t) => {
  const c = new ApiClient(['http://127.0.0.1:1']);
  t.teardown(() => c.close());
  const base: LeaderElectorOptions = { client: c, lease: { namespace: 'kube-system', name: 'x' }, onStartedLeading() {} };
  const d = resolveOptions(base);
  t.match(d, { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, attemptTimeoutMs: 1_500, releaseOnCancel: true, reacquire: true, name: 'x' });
  t.match(d.identity, /^.+_[0-9a-f]{16}$/, 'identity: hostname_random');
  t.not(resolveOptions(base).identity, d.identity, 'a new identity each time');
  t.equal(JITTER_FACTOR, 1.2);

  const bad = (o: Partial<LeaderElectorOptions>, msg: RegExp) =>
    t.throws(() => new LeaderElector({ ...base, ...o } as LeaderElectorOptions), { name: 'LeaderElectionConfigError', message: msg }, msg.source);
  bad({ leaseDurationMs: 10_000 }, /leaseDurationMs must be greater than renewDeadlineMs/);
  bad({ renewDeadlineMs: 2_400 }, /renewDeadlineMs must be greater than retryPeriodMs\*1\.2/);
  bad({ leaseDurationMs: 15_500 }, /whole number of seconds/);
  bad({ retryPeriodMs: 0 }, /retryPeriodMs must be greater than zero/);
  bad({ renewDeadlineMs: -1 }, /renewDeadlineMs must be greater than zero/);
  bad({ leaseDurationMs: Number.NaN }, /leaseDurationMs must be greater than zero/);
  bad({ attemptTimeoutMs: 2_001 }, /attemptTimeoutMs must not be greater than retryPeriodMs/);
  bad({ identity: '' }, /identity must not be empty/);
  bad({ lease: { namespace: '', name: 'x' } }, /lease.namespace is required/);
  bad({ onStartedLeading: undefined }, /onStartedLeading callback is required/);
  t.ok(new LeaderElectionConfigError('x') instanceof Error);
  // The boundary client-go allows: renewDeadline just above 1.2 × retryPeriod.
  t.doesNotThrow(() => new LeaderElector({ ...base, leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 1_666, logger: silentLogger }));
});

// ------------------------------------------------------------- shared helpers

/**
 * Every leader's signal, in one place: a signal handed out while another is
 * still unaborted is a violation (two leaders at once). A poll of isLeader()
 * over all electors adds a second, independent check.
 */
class Timeline {
  active = new Map<string, number>();
  events: { t: number; id: string; what: 'start' | 'stop' }[] = [];
  violations: string[] = [];
  private poll?: NodeJS.Timeout;

  started(id: string, signal: AbortSignal): void {
    const t0 = now();
    if (signal.aborted) this.violations.push(`${id} was handed an aborted signal`);
    for (const [other] of this.active) this.violations.push(`${id} started leading while ${other} still led`);
    this.active.set(id, t0);
    this.events.push({ t: t0, id, what: 'start' });
    signal.addEventListener('abort', () => {
      this.active.delete(id);
      this.events.push({ t: now(), id, what: 'stop' });
    }, { once: true });
  }

  watch(electors: () => LeaderElector[]): void {
    this.poll = setInterval(() => {
      const leaders = electors().filter((e) => e.isLeader()).map((e) => e.identity);
      if (leaders.length > 1) this.violations.push(`isLeader() true for ${leaders.join(', ')} at once`);
    }, 5);
  }

  close(): void {
    clearInterval(this.poll);
  }

  last(id: string, what: 'start' | 'stop'): number | undefined {
    return this.events.filter((e) => e.id === id && e.what === what).at(-1)?.t;
  }

  leader(): string | undefined {
    return [...this.active.keys()][0];
  }
}

const FAST = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };

// ----------------------------------------------------------- a fake Lease API

/** One Lease in memory behind the Lease REST paths, with failures on demand. */
class FakeLeaseApi {
  lease?: LeaseObject;
  rv = 1;
  /** How PUTs are answered: normally; 504 after applying; 504 after applying every other one; never. */
  putMode: 'ok' | '504' | 'alternate-504' | 'hang' = 'ok';
  /** Local times of PUTs that were applied and answered 200. */
  okPuts: number[] = [];
  puts = 0;
  private hung: ServerResponse[] = [];
  private readonly server = createServer((req, res) => void this.handle(req, res));
  url = '';

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const r of this.hung) r.destroy();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }

  /** Someone else writes the lease (an intruder holding it). */
  steal(holder: string): void {
    this.lease = { ...this.lease!, metadata: { ...this.lease!.metadata, resourceVersion: String(++this.rv) }, spec: { ...this.lease!.spec, holderIdentity: holder } };
  }

  private status(res: ServerResponse, code: number, reason: string): void {
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: reason, reason, code }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let text = '';
    for await (const chunk of req) text += chunk;
    const body = text ? (JSON.parse(text) as LeaseObject) : undefined;
    const send = (code: number) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(this.lease));
    };
    if (req.method === 'GET') return this.lease ? send(200) : this.status(res, 404, 'NotFound');
    if (req.method === 'POST') {
      if (this.lease) return this.status(res, 409, 'AlreadyExists');
      this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.rv) } };
      return send(201);
    }
    if (req.method === 'PUT') {
      this.puts++;
      if (this.putMode === 'hang') {
        this.hung.push(res);
        return;
      }
      if (!this.lease) return this.status(res, 404, 'NotFound');
      if (body!.metadata.resourceVersion !== this.lease.metadata.resourceVersion) return this.status(res, 409, 'Conflict');
      this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.rv) } };
      if (this.putMode === '504' || (this.putMode === 'alternate-504' && this.puts % 2 === 0)) return this.status(res, 504, 'Timeout');
      this.okPuts.push(now());
      return send(200);
    }
    this.status(res, 405, 'MethodNotAllowed');
  }
}

t.test('against a fake Lease API: unknown outcomes, hanging updates, a stolen lease', async (t) => {
  const api = new FakeLeaseApi();
  await api.start();
  t.teardown(() => api.close());
  const c = new ApiClient([api.url], { backoffMs: 20 });
  t.teardown(() => c.close());
  const timing = { leaseDurationMs: 2_000, renewDeadlineMs: 1_000, retryPeriodMs: 250 };
  const timeline = new Timeline();
  t.teardown(() => timeline.close());
  const electors: LeaderElector[] = [];
  t.teardown(() => Promise.all(electors.map((e) => e.stop())));
  const make = (id: string) => {
    const e = new LeaderElector({
      client: c, lease: { namespace: 'ns', name: 'fake' }, identity: id, logger: silentLogger, ...timing,
      onStartedLeading: (signal) => timeline.started(id, signal),
    });
    electors.push(e);
    void e.run();
    return e;
  };
  const a = make('a');
  await waitFor('a to lead', () => a.isLeader(), 5_000, 10);
  t.equal(api.lease?.spec?.holderIdentity, 'a', 'the lease was created with a as holder');
  t.equal(api.lease?.spec?.leaseTransitions, 0);
  t.match(api.lease?.spec?.renewTime, MICRO);

  await t.test('a 504 on every other update (applied, outcome unknown): the next try re-reads and leadership holds', async (t) => {
    api.putMode = 'alternate-504';
    const before = api.okPuts.length;
    await sleep(2_500);
    api.putMode = 'ok';
    t.ok(a.isLeader(), 'still leading');
    t.equal(timeline.events.length, 1, 'never stopped leading');
    t.ok(api.okPuts.length - before >= 4, `renewals went on (${api.okPuts.length - before} answered 200)`);
    t.equal(api.lease?.spec?.leaseTransitions, 0, 'renewals are no transitions');
  });

  await t.test('updates answered 504 every time: a failed renewal each; the signal aborts at the renew deadline', async (t) => {
    api.putMode = '504';
    const lastOk = api.okPuts.at(-1)!;
    await waitFor('a to stop leading', () => !a.isLeader(), 5_000, 5);
    const stoppedAt = timeline.last('a', 'stop')!;
    api.putMode = 'ok';
    // The last good renewal's try started before the server applied it; the deadline counts from that start.
    t.ok(stoppedAt - lastOk <= timing.renewDeadlineMs + 50, `aborted ${Math.round(stoppedAt - lastOk)} ms after the last good renewal reached the server (deadline ${timing.renewDeadlineMs})`);
    t.ok(stoppedAt - lastOk >= timing.renewDeadlineMs - timing.retryPeriodMs - 50, 'and not long before the deadline');
    // The lease still names a (its writes were applied): a takes it back without a transition.
    await waitFor('a to lead again', () => a.isLeader(), 5_000, 10);
    t.equal(api.lease?.spec?.holderIdentity, 'a');
    t.equal(api.lease?.spec?.leaseTransitions, 0, 'the same holder again: no transition');
  });

  await t.test('updates that hang: the signal aborts within the renew deadline anyway', async (t) => {
    await sleep(300);
    api.putMode = 'hang';
    const lastOk = api.okPuts.at(-1)!;
    await waitFor('a to stop leading', () => !a.isLeader(), 5_000, 5);
    const stoppedAt = timeline.last('a', 'stop')!;
    t.ok(stoppedAt - lastOk <= timing.renewDeadlineMs + 50, `aborted ${Math.round(stoppedAt - lastOk)} ms after the last good renewal (deadline ${timing.renewDeadlineMs})`);
    api.putMode = 'ok';
    await waitFor('a to lead again', () => a.isLeader(), 5_000, 10);
  });

  await t.test('a lease taken by someone else ends leadership at the next try, not at the deadline', async (t) => {
    await sleep(300);
    const stolenAt = now();
    api.steal('intruder');
    await waitFor('a to stop leading', () => !a.isLeader(), 5_000, 5);
    const stoppedAt = timeline.last('a', 'stop')!;
    t.ok(stoppedAt - stolenAt < timing.retryPeriodMs * 2, `stopped ${Math.round(stoppedAt - stolenAt)} ms after the lease was taken`);
    t.equal(a.leader(), 'intruder', 'leader() names the new holder');
    // The intruder never renews: a takes the lease over once it has been unchanged for its duration.
    await waitFor('a to take the lease over', () => a.isLeader(), 6_000, 10);
    t.ok(now() - stolenAt >= timing.leaseDurationMs, `not before the lease duration (${Math.round(now() - stolenAt)} ms)`);
    t.equal(api.lease?.spec?.leaseTransitions, 1, 'intruder → a is a transition');
  });
  t.same(timeline.violations, []);
});

// ------------------------------------------------------- a real flotilla server

/** A TCP proxy that can swallow everything in both directions (a partition that leaves requests hanging). */
async function tcpProxy(target: string): Promise<{ url: string; blackhole: boolean; close(): Promise<void> }> {
  const u = new URL(target);
  const sockets = new Set<Socket>();
  const p = {
    url: '',
    blackhole: false,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  const server = createTcpServer((down) => {
    const up = connect(Number(u.port), u.hostname);
    sockets.add(down);
    sockets.add(up);
    down.on('data', (d) => { if (!p.blackhole) up.write(d); });
    up.on('data', (d) => { if (!p.blackhole) down.write(d); });
    const end = () => {
      down.destroy();
      up.destroy();
      sockets.delete(down);
      sockets.delete(up);
    };
    for (const s of [down, up]) {
      s.on('close', end);
      s.on('error', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return p;
}

t.test('against a real flotilla server', async (t) => {
  const cluster = await FlotillaCluster.start(1);
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  const getLease = (name: string) => c.get<LeaseObject>(`/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/${name}`);

  const electors: LeaderElector[] = [];
  t.teardown(() => Promise.all(electors.map((e) => e.stop())));
  const make = (timeline: Timeline, lease: string, id: string, o: Partial<LeaderElectorOptions> = {}) => {
    const e = new LeaderElector({
      client: c, lease: { namespace: 'kube-system', name: lease }, identity: id, logger: silentLogger, ...FAST,
      onStartedLeading: (signal) => timeline.started(id, signal),
      ...o,
    });
    electors.push(e);
    return e;
  };

  await t.test('one of three leads; a clean stop releases and a standby takes over at once', async (t) => {
    const timeline = new Timeline();
    t.teardown(() => timeline.close());
    const registries = new Map<string, client.Registry>();
    const newLeaders = new Map<string, string[]>();
    const stoppedCalls: string[] = [];
    let workDone = false;
    let holderWhenWorkDone: string | undefined;
    const trio = ['e1', 'e2', 'e3'].map((id) => {
      const registry = new client.Registry();
      registries.set(id, registry);
      newLeaders.set(id, []);
      return make(timeline, 'trio', id, {
        registry,
        onNewLeader: (l) => newLeaders.get(id)!.push(l),
        onStoppedLeading: () => stoppedCalls.push(id),
        // The work winds down for 300 ms after the signal aborts; stop() must wait for it before releasing.
        onStartedLeading: (signal) => {
          timeline.started(id, signal);
          return new Promise<void>((resolve) => {
            signal.addEventListener('abort', () => setTimeout(() => {
              void getLease('trio').then((l) => {
                holderWhenWorkDone = l.spec?.holderIdentity;
                workDone = true;
                resolve();
              }, () => resolve());
            }, 300), { once: true });
          });
        },
      });
    });
    timeline.watch(() => trio);
    for (const e of trio) void e.run();

    const first = await waitFor('a leader', () => timeline.leader(), 10_000, 10);
    const leader = trio.find((e) => e.identity === first)!;
    await sleep(2_000); // a few renewals, with two candidates trying all along
    t.equal(trio.filter((e) => e.isLeader()).length, 1, 'exactly one leads');
    t.equal(timeline.events.length, 1, 'and nobody else ever started');
    for (const e of trio) t.equal(e.leader(), first, `${e.identity} observes ${first} as the leader`);
    for (const [id, seen] of newLeaders) t.same(seen, [first], `${id}: onNewLeader(${first}) once`);

    const l1 = await getLease('trio');
    t.equal(l1.spec?.holderIdentity, first);
    t.equal(l1.spec?.leaseDurationSeconds, 3);
    t.equal(l1.spec?.leaseTransitions, 0, 'created by its first holder: no transition');
    t.match(l1.spec?.acquireTime, MICRO, 'acquireTime is a MicroTime');
    t.match(l1.spec?.renewTime, MICRO, 'renewTime is a MicroTime');
    await sleep(700);
    const l2 = await getLease('trio');
    t.equal(l2.spec?.acquireTime, l1.spec?.acquireTime, 'acquireTime stays while renewing');
    t.ok(parseMicroTime(l2.spec!.renewTime!) > parseMicroTime(l1.spec!.renewTime!), 'renewTime moves on');

    // Metrics: the leader's gauge is 1, the others' 0; the leader started once, the others never.
    for (const [id, registry] of registries) {
      const g = await registry.getSingleMetric('leader_election_master_status')!.get();
      t.same(g.values.map((v) => [v.labels.name, v.value]), [['trio', id === first ? 1 : 0]], `${id}: leader_election_master_status`);
      const c = await registry.getSingleMetric('leader_election_transitions_total')!.get();
      t.same(c.values.map((v) => [v.labels.name, v.value]), [['trio', id === first ? 1 : 0]], `${id}: leader_election_transitions_total`);
    }
    t.match(await registries.get(first)!.metrics(), /^leader_election_master_status\{name="trio"\} 1$/m, 'exposition');

    // Clean stop of the leader.
    const stopAt = now();
    await leader.stop();
    const stoppedAt = timeline.last(first, 'stop')!;
    t.ok(stoppedAt - stopAt < 20, 'stop() aborts the signal at once');
    t.same(stoppedCalls, [first], 'onStoppedLeading called once, for the leader');
    t.ok(workDone, 'stop() waited for the leader\'s work to finish');
    t.equal(holderWhenWorkDone, first, 'the lease was not released before the work finished');
    t.notOk(leader.isLeader());
    const second = await waitFor('a new leader', () => timeline.leader(), 5_000, 5);
    const tookMs = now() - (stopAt + 300);
    t.not(second, first);
    // Candidates try every retryPeriod × [1, 2.2); the release lands right after the work's 300 ms.
    t.ok(tookMs < FAST.retryPeriodMs * (1 + JITTER_FACTOR) + 300, `a standby took over ${Math.round(tookMs)} ms after the release (not after the ${FAST.leaseDurationMs} ms lease)`);
    const l3 = await getLease('trio');
    t.equal(l3.spec?.holderIdentity, second);
    t.equal(l3.spec?.leaseTransitions, 1, 'released → taken over: one transition');
    t.not(l3.spec?.acquireTime, l1.spec?.acquireTime, 'acquireTime set on acquisition');
    t.equal(l3.spec?.leaseDurationSeconds, 3, 'the new holder writes its own duration (the release wrote 1)');
    const firstRegistry = registries.get(first)!;
    t.same((await firstRegistry.getSingleMetric('leader_election_master_status')!.get()).values[0]?.value, 0, 'the old leader reports 0');
    t.same((await firstRegistry.getSingleMetric('leader_election_transitions_total')!.get()).values[0]?.value, 2, 'started and stopped: 2 transitions');
    t.same((await registries.get(second)!.getSingleMetric('leader_election_master_status')!.get()).values[0]?.value, 1);
    await sleep(1_000);
    t.equal(trio.filter((e) => e.isLeader()).length, 1, 'still exactly one leader');
    t.same(timeline.violations, [], 'never two leaders at once');
    for (const e of trio) await e.stop();
    t.same(timeline.violations, []);
  });

  await t.test('a leader cut off from the API aborts within renewDeadline; a standby takes over only after the lease duration', async (t) => {
    const timeline = new Timeline();
    t.teardown(() => timeline.close());
    const proxy = await tcpProxy(cluster.urls[0]!);
    t.teardown(() => proxy.close());
    const viaProxy = new ApiClient([proxy.url], { backoffMs: 20 });
    t.teardown(() => viaProxy.close());
    const cut = make(timeline, 'cut', 'cut-off', { client: viaProxy });
    const standbys = ['s1', 's2'].map((id) => make(timeline, 'cut', id));
    const all = [cut, ...standbys];
    timeline.watch(() => all);
    void cut.run();
    await waitFor('the proxied elector to lead', () => cut.isLeader(), 10_000, 10);
    for (const e of standbys) void e.run();
    await sleep(1_500);
    t.ok(cut.isLeader(), 'the standbys wait while it renews');
    const before = (await getLease('cut')).spec!;

    const partitionedAt = now();
    proxy.blackhole = true; // every request from now on hangs
    await waitFor('the cut-off leader to stop', () => !cut.isLeader(), 5_000, 5);
    const abortedAt = timeline.last('cut-off', 'stop')!;
    // Its last good renewal started before the partition, so the deadline is at most renewDeadline after it.
    t.ok(abortedAt - partitionedAt <= FAST.renewDeadlineMs + 50, `aborted ${Math.round(abortedAt - partitionedAt)} ms after the partition (renewDeadline ${FAST.renewDeadlineMs})`);
    t.ok(abortedAt - partitionedAt >= FAST.renewDeadlineMs - FAST.retryPeriodMs - 400, 'not long before its deadline either');

    const next = await waitFor('a standby to lead', () => timeline.leader(), 10_000, 5);
    const tookOverAt = timeline.last(next, 'start')!;
    t.ok(next === 's1' || next === 's2');
    // The standbys saw the last renewal only after it started; they wait a whole lease duration from then.
    t.ok(tookOverAt - abortedAt >= (FAST.leaseDurationMs - FAST.renewDeadlineMs) * 0.8,
      `the standby started ${Math.round(tookOverAt - abortedAt)} ms after the old leader aborted (margin leaseDuration - renewDeadline = ${FAST.leaseDurationMs - FAST.renewDeadlineMs} ms)`);
    t.ok(tookOverAt - partitionedAt >= FAST.leaseDurationMs - FAST.retryPeriodMs - 400,
      `not before the lease duration (${Math.round(tookOverAt - partitionedAt)} ms after the partition)`);
    const after = (await getLease('cut')).spec!;
    t.equal(after.holderIdentity, next);
    t.equal(after.leaseTransitions, (before.leaseTransitions ?? 0) + 1, 'a forced takeover is a transition');

    // The partition heals: the old leader sees the new holder and stays a candidate.
    proxy.blackhole = false;
    await waitFor('the old leader to observe the new one', () => cut.leader() === next, 5_000, 20);
    await sleep(1_000);
    t.notOk(cut.isLeader(), 'the old leader does not come back');
    t.equal(all.filter((e) => e.isLeader()).length, 1);
    t.same(timeline.violations, [], 'never two leaders at once');
    for (const e of all) await e.stop();
  });

  await t.test('reacquire: false ends run() when leadership is lost; the signal carries why', async (t) => {
    const timeline = new Timeline();
    t.teardown(() => timeline.close());
    const proxy = await tcpProxy(cluster.urls[0]!);
    t.teardown(() => proxy.close());
    const viaProxy = new ApiClient([proxy.url], { backoffMs: 20 });
    t.teardown(() => viaProxy.close());
    let reason: unknown;
    const e = make(timeline, 'once', 'once', {
      client: viaProxy, reacquire: false,
      onStartedLeading: (signal) => {
        timeline.started('once', signal);
        signal.addEventListener('abort', () => { reason = signal.reason; });
      },
    });
    const done = e.run();
    await waitFor('it leads', () => e.isLeader(), 10_000, 10);
    proxy.blackhole = true;
    await done;
    t.notOk(e.isLeader());
    t.ok(reason instanceof LeadershipLostError, 'aborted with a LeadershipLostError');
    t.match(String((reason as Error).message), /renew deadline/);
    t.throws(() => e.run(), /already called/);
    proxy.blackhole = false;
    await e.stop();
  });

  t.ok(leaderElectionMetrics(new client.Registry()), 'metrics helper');
});

