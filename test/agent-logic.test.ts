// Facts of the node agent's pure parts, as Kubernetes defines them: $(VAR)
// expansion (third_party/forked/golang/expansion), service link variables
// (pkg/kubelet/envvars), the downward API's resourceFieldRef rounding, the
// pod phase (kubelet getPhase), allocatable, the pod IP allocator and the
// image table.
import t from 'tap';
import { allocatable, formatList } from '../agents/agent/node-status.ts';
import { PodIPAllocator } from '../agents/agent/pod-ip.ts';
import { type ContainerRuntimeState, podPhase } from '../agents/agent/pod-status.ts';
import { resourceFieldValue, serviceEnv } from '../agents/agent/runtime/env.ts';
import { expand } from '../agents/agent/runtime/expand.ts';
import { containerArgv } from '../agents/agent/runtime/images.ts';
import type { Pod } from '../agents/informer/types.ts';

t.test('$(VAR) expansion', async (t) => {
  const vars: Record<string, string> = { A: 'a', B: 'b', EMPTY: '' };
  const cases: [string, string][] = [
    ['$(A)', 'a'],
    ['x$(A)y$(B)z', 'xaybz'],
    ['$(UNDEFINED)', '$(UNDEFINED)'],
    ['$$(A)', '$(A)'],
    ['$$$(A)', '$a'],
    ['$$', '$'],
    ['$A', '$A'],
    ['$', '$'],
    ['a$', 'a$'],
    ['$(A', '$(A'],
    ['$(A$(B)', '$(A$(B)'],
    ['$(EMPTY)x', 'x'],
    ['$()', '$()'],
    ['$($(A))', '$($(A))'],
  ];
  // "$(A$(B)": the reference runs to the first ")", so its name is "A$(B" — undefined, left as written.
  for (const [input, want] of cases) t.equal(expand(input, (n) => vars[n]), want, JSON.stringify(input));
  t.equal(expand('$(A x $(B)', (n) => vars[n]), '$(A x $(B)', 'an unterminated reference name includes everything up to the next ")"');
  t.equal(expand('$(A', (n) => vars[n]), '$(A');
  t.equal(expand('y $( $(B)', (n) => vars[n]), 'y $( $(B)');
  t.equal(expand('tail $(', (n) => vars[n]), 'tail $(', 'an incomplete reference at the end stays');
});

t.test('service link variables', async (t) => {
  const env = serviceEnv([
    { metadata: { name: 'my-db', namespace: 'ns' }, spec: { clusterIP: '10.0.0.5', ports: [{ name: 'sql', port: 5432, protocol: 'TCP' }, { name: 'metrics', port: 9100 }] } },
    { metadata: { name: 'headless', namespace: 'ns' }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } },
  ]);
  t.same(env, {
    MY_DB_SERVICE_HOST: '10.0.0.5', MY_DB_SERVICE_PORT: '5432', MY_DB_SERVICE_PORT_SQL: '5432', MY_DB_SERVICE_PORT_METRICS: '9100',
    MY_DB_PORT: 'tcp://10.0.0.5:5432',
    MY_DB_PORT_5432_TCP: 'tcp://10.0.0.5:5432', MY_DB_PORT_5432_TCP_PROTO: 'tcp', MY_DB_PORT_5432_TCP_PORT: '5432', MY_DB_PORT_5432_TCP_ADDR: '10.0.0.5',
    MY_DB_PORT_9100_TCP: 'tcp://10.0.0.5:9100', MY_DB_PORT_9100_TCP_PROTO: 'tcp', MY_DB_PORT_9100_TCP_PORT: '9100', MY_DB_PORT_9100_TCP_ADDR: '10.0.0.5',
  }, 'headless services get none');
});

t.test('resourceFieldRef: over the divisor, rounded up; limits default to node allocatable', async (t) => {
  const c = { name: 'c', resources: { requests: { cpu: '250m', memory: '64Mi' }, limits: { memory: '100M' } } };
  const alloc = { cpu: 3.5, memory: 4 * 2 ** 30 };
  t.equal(resourceFieldValue(c, { resource: 'requests.cpu' }, alloc), '1', 'cpu 250m with divisor 1 rounds up to 1');
  t.equal(resourceFieldValue(c, { resource: 'requests.cpu', divisor: '1m' }, alloc), '250');
  t.equal(resourceFieldValue(c, { resource: 'limits.cpu' }, alloc), '4', 'no cpu limit: node allocatable 3.5 → 4');
  t.equal(resourceFieldValue(c, { resource: 'limits.memory', divisor: '1Mi' }, alloc), '96', '100M / 1Mi = 95.37 → 96');
  t.equal(resourceFieldValue(c, { resource: 'requests.memory' }, alloc), String(64 * 2 ** 20));
});

t.test('pod phase (kubelet getPhase)', async (t) => {
  const run = (): ContainerRuntimeState => ({ name: 'x', image: '', restartCount: 0, ready: true, started: true, running: { startedAt: '', containerID: '' } });
  const done = (code: number): ContainerRuntimeState => ({ name: 'x', image: '', restartCount: 0, ready: false, started: false, terminated: { exitCode: code, reason: '', startedAt: '', finishedAt: '' } });
  const backoff = (code: number): ContainerRuntimeState => ({ name: 'x', image: '', restartCount: 1, ready: false, started: false, waiting: { reason: 'CrashLoopBackOff' }, lastTerminated: { exitCode: code, reason: '', startedAt: '', finishedAt: '' } });
  const fresh = (): ContainerRuntimeState => ({ name: 'x', image: '', restartCount: 0, ready: false, started: false });
  const phase = (policy: string, containers: ContainerRuntimeState[], init: ContainerRuntimeState[] = []) =>
    podPhase({ pod: { metadata: { name: 'p' }, spec: { restartPolicy: policy, containers: [] } } as Pod, init, containers, hostIP: '', startTime: '' });
  const cases: [string, string, ContainerRuntimeState[], ContainerRuntimeState[], string][] = [
    ['not started yet', 'Always', [fresh()], [], 'Pending'],
    ['running', 'Always', [run()], [], 'Running'],
    ['one running, one waiting', 'Always', [run(), fresh()], [], 'Pending'],
    ['exited 0 under Always (will restart)', 'Always', [done(0)], [], 'Running'],
    ['exited 0 under OnFailure', 'OnFailure', [done(0)], [], 'Succeeded'],
    ['exited 1 under OnFailure (will restart)', 'OnFailure', [done(1)], [], 'Running'],
    ['exited 1 under Never', 'Never', [done(1)], [], 'Failed'],
    ['one 0, one 1 under Never', 'Never', [done(0), done(1)], [], 'Failed'],
    ['all 0 under Never', 'Never', [done(0), done(0)], [], 'Succeeded'],
    ['in back-off', 'Always', [backoff(1)], [], 'Running'],
    ['init running', 'Always', [fresh()], [run()], 'Pending'],
    ['init failed under Never', 'Never', [fresh()], [done(1)], 'Failed'],
    ['init failed under Always (retried)', 'Always', [fresh()], [done(1)], 'Pending'],
    ['init done, main running', 'Always', [run()], [done(0)], 'Running'],
  ];
  for (const [what, policy, cs, init, want] of cases) t.equal(phase(policy, cs, init), want, what);
});

t.test('allocatable and formatting', async (t) => {
  const cap = { cpu: 4, memory: 8 * 2 ** 30, pods: 110, 'ephemeral-storage': 100 * 2 ** 30 };
  const a = allocatable(cap, { cpu: 0.5, memory: 2 ** 30 }, { cpu: 0.25, 'ephemeral-storage': 2 ** 30 });
  t.same(formatList(a), { cpu: '3250m', memory: `${(7 * 1024 - 100) * 1024}Ki`, pods: '110', 'ephemeral-storage': `${99 * 1024 * 1024}Ki` });
  t.same(formatList(allocatable({ cpu: 1, memory: 50 * 2 ** 20 }, { cpu: 2 })), { cpu: '0', memory: '0Ki' }, 'never negative');
});

t.test('pod IP allocator', async (t) => {
  const a = new PodIPAllocator('127.64.3.0/30');
  t.equal(a.allocate('u1'), '127.64.3.1', 'the network address is skipped');
  t.equal(a.allocate('u1'), '127.64.3.1', 'the same pod keeps its address');
  t.equal(a.allocate('u2'), '127.64.3.2');
  t.throws(() => a.allocate('u3'), /no free pod IP/, 'the last address is not handed out');
  a.release('u1');
  t.equal(a.allocate('u3'), '127.64.3.1', 'a released address is reused');
  const b = new PodIPAllocator('127.64.4.0/24');
  t.ok(b.reserve('old', '127.64.4.7'), 'an address kept across an agent restart');
  t.notOk(b.reserve('other', '127.64.4.7'), 'taken');
  t.notOk(b.reserve('x', '127.64.5.7'), 'outside the CIDR');
});

t.test('image table', async (t) => {
  t.same(containerArgv({ image: 'node:20-alpine', args: ['server.js'] }), { argv: [process.execPath, 'server.js'] });
  t.same(containerArgv({ image: 'docker.io/library/busybox:1.36', args: ['-c', 'true'] }), { argv: ['/bin/sh', '-c', 'true'] });
  t.same(containerArgv({ image: 'nginx', command: ['sleep'], args: ['1'] }), { argv: ['sleep', '1'] }, 'a command runs whatever the image');
  t.match(containerArgv({ image: 'nginx:1.25' }), { reason: 'ErrImageNeverPull', message: /nginx:1\.25/ });
});
