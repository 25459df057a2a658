// The node agent as a real process against a real server and nats-server,
// with the node IPAM controller giving its node a pod CIDR: it registers its
// Node (capacity, allocatable, addresses, labels, conditions, endpoint) and
// its Lease; runs pods (created with spec.nodeName set: no scheduler here) as
// processes on their own loopback IPs with the Kubernetes environment;
// restarts killed containers; reports images it cannot run, missing config,
// exits under each restartPolicy; stops deleted pods gracefully before their
// objects go; and after kill -9 adopts its running containers without
// starting any twice, stopping those whose pods were deleted meanwhile.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { ApiClient, ApiClientError, resourcePath } from '../agents/client/api.ts';
import { NodeIpamController } from '../agents/controllers/nodeipam/controller.ts';
import { RootCAPublisher } from '../agents/controllers/serviceaccount/rootca.ts';
import type { Lease, Node, Pod } from '../agents/informer/types.ts';
import { cidrSize, parseCidr, parseIPv4 } from '../api/ipv4.ts';
import { kindByName } from '../api/kinds/index.ts';
import { AgentProcess, processAlive } from '../harness/agent.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { NatsServers } from '../harness/nats.ts';
import { sleep, waitFor } from '../harness/procs.ts';
import { main as logsMain } from '../bin/commands/logs.ts';
import { runControllers } from './support/controllers.ts';

const PODS = kindByName('pods')!;
const NODES = kindByName('nodes')!;

// A node address unlikely to collide with another test run on this machine.
const octet = 30 + Math.floor(Math.random() * 200);
const ADDRESS = `127.0.${octet}.11`;
const NODE = `agent-${octet}`;

const HTTP_SERVER = `
const http = require('http');
http.createServer((q, s) => s.end(JSON.stringify({ pid: process.pid, env: process.env, cwd: process.cwd() }))).listen(+process.env.PORT, process.env.POD_IP);
process.on('SIGTERM', () => process.exit(0));
`;

function pod(name: string, containers: Record<string, unknown>[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: name } }, spec: { nodeName: NODE, containers, terminationGracePeriodSeconds: 5, ...extra } };
}

t.test('node agent', async (t) => {
  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  const cluster = await FlotillaCluster.start(1, { args: ['--nats', nats.url] });
  t.teardown(() => cluster.stop());
  const c = new ApiClient(cluster.urls);
  t.teardown(() => c.close());
  // Pod CIDRs of their own too: pod IPs are real loopback addresses that another run could be listening on.
  const ipam = await runControllers(c, nats.url, [(ctx) => new NodeIpamController(ctx), (ctx) => new RootCAPublisher(ctx)], { clusterCIDR: `127.${100 + (octet % 100)}.0.0/16` });
  t.teardown(() => ipam.stop());
  const agent = await AgentProcess.start({
    servers: cluster.urls, name: NODE, address: ADDRESS, nats: nats.url,
    args: ['--metrics-interval', '2s', '--sync-frequency', '2s', '--container-log-max-size', '64Ki', '--container-log-max-files', '3', '--capacity', 'cpu=4,memory=8Gi', '--system-reserved', 'cpu=500m,memory=1Gi', '--zone', 'zone-a', '--backoff-initial', '2s'],
  });
  t.teardown(() => agent.stop());
  const path = resourcePath(PODS, 'default');
  const getPod = (name: string) => c.get<Pod>(`${path}/${name}`);
  const waitPod = (name: string, what: string, ok: (p: Pod) => boolean, ms = 20_000) =>
    waitFor(`${name}: ${what}`, async () => {
      const p = await getPod(name);
      return ok(p) ? p : undefined;
    }, ms, 100);
  // Ready without a readiness probe means started, as in Kubernetes: the server may need a moment to listen.
  const ask = (ip: string) => waitFor(`${ip}:8080 to answer`, async () => {
    try {
      const r = await request(`http://${ip}:8080/`);
      return (await r.body.json()) as { pid: number; env: Record<string, string>; cwd: string };
    } catch {
      return undefined;
    }
  }, 10_000, 100);
  const cs = (p: Pod, i = 0) => p.status?.containerStatuses?.[i] as Record<string, any> | undefined;

  await t.test('registers its Node and renews its Lease', async (t) => {
    const node = await waitFor('the pod CIDR', async () => {
      const n = await c.get<Node>(resourcePath(NODES, '', NODE));
      return (n.spec as { podCIDR?: string })?.podCIDR ? n : undefined;
    });
    t.same(node.status?.capacity && { cpu: node.status.capacity.cpu, memory: node.status.capacity.memory, pods: node.status.capacity.pods }, { cpu: '4', memory: '8388608Ki', pods: '110' }, 'capacity from --capacity; pods 110');
    // 8Gi − 1Gi (system-reserved) − 100Mi (hard eviction threshold) = 7068Mi.
    t.same({ cpu: node.status?.allocatable?.cpu, memory: node.status?.allocatable?.memory }, { cpu: '3500m', memory: `${7068 * 1024}Ki` }, 'allocatable = capacity − reserved − eviction threshold');
    t.ok(node.status?.capacity?.['ephemeral-storage'], 'ephemeral-storage measured');
    t.same(node.status?.addresses, [{ type: 'InternalIP', address: ADDRESS }, { type: 'Hostname', address: NODE }]);
    t.equal(node.metadata.labels?.['kubernetes.io/hostname'], NODE);
    t.equal(node.metadata.labels?.['kubernetes.io/os'], 'linux');
    t.equal(node.metadata.labels?.['topology.kubernetes.io/zone'], 'zone-a');
    t.same((node.status?.conditions ?? []).map((x) => `${x.type}=${x.status}`).sort(), ['DiskPressure=False', 'MemoryPressure=False', 'PIDPressure=False', 'Ready=True']);
    t.equal((node.status as any).daemonEndpoints.kubeletEndpoint.Port, agent.port, 'the agent endpoint port is published');
    t.match((node.status as any).nodeInfo, { operatingSystem: 'linux', containerRuntimeVersion: /^flotilla-process/ });
    const lease = await c.get<Lease>(resourcePath(kindByName('leases')!, 'kube-node-lease', NODE));
    t.equal(lease.spec?.holderIdentity, NODE);
    t.equal(lease.spec?.leaseDurationSeconds, 40);
    t.equal((lease.metadata as any).ownerReferences?.[0]?.name, NODE, 'the Lease is owned by its Node');
  });

  let webPid = 0;
  await t.test('runs a pod as a process on its own IP with the Kubernetes environment', async (t) => {
    await c.create(resourcePath(kindByName('configmaps')!, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'web-config' }, data: { greeting: 'hello', '1st': 'x' } });
    await c.create(resourcePath(kindByName('secrets')!, 'default'), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'web-secret' }, data: { token: Buffer.from('s3cret').toString('base64') } });
    await c.create(resourcePath(kindByName('services')!, 'default'), { apiVersion: 'v1', kind: 'Service', metadata: { name: 'my-db' }, spec: { ports: [{ name: 'sql', port: 5432 }] } });
    await c.create(path, pod('web', [{
      name: 'web', image: 'node:20', command: ['node', '-e', HTTP_SERVER], ports: [{ containerPort: 8080 }],
      resources: { limits: { memory: '256Mi' } },
      envFrom: [{ configMapRef: { name: 'web-config' }, prefix: 'CM_' }, { configMapRef: { name: 'web-config' } }],
      env: [
        { name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'web-config', key: 'greeting' } } },
        { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'web-secret', key: 'token' } } },
        { name: 'MY_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'MY_NODE', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } },
        { name: 'MY_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'MEM_MI', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
        { name: 'COMBINED', value: '$(GREETING)-$(MY_NAME)-$(UNDEFINED)-$$(GREETING)' },
      ],
    }]));
    const p = await waitPod('web', 'Running and Ready', (p) => p.status?.phase === 'Running' && p.status.conditions?.find((x) => x.type === 'Ready')?.status === 'True');
    const node = await c.get<Node>(resourcePath(NODES, '', NODE));
    const cidr = parseCidr((node.spec as { podCIDR: string }).podCIDR);
    const ip = parseIPv4(p.status!.podIP!)!;
    t.ok(ip > cidr.base && ip < cidr.base + cidrSize(cidr), `podIP ${p.status!.podIP} lies in the node's pod CIDR`);
    t.equal(p.status!.hostIP, ADDRESS);
    t.same(p.status!.conditions!.map((x) => `${x.type}=${x.status}`), ['PodScheduled=True', 'Initialized=True', 'ContainersReady=True', 'Ready=True']);
    t.match(cs(p), { name: 'web', ready: true, started: true, restartCount: 0, state: { running: { startedAt: String } } });
    t.ok(p.status!.startTime);
    const body = await ask(p.status!.podIP!);
    webPid = body.pid;
    t.match(body.env, {
      POD_IP: p.status!.podIP, PORT: '8080', HOSTNAME: 'web', CM_greeting: 'hello', GREETING: 'hello', TOKEN: 's3cret', MY_NAME: 'web', MY_NODE: NODE,
      MY_IP: p.status!.podIP, MEM_MI: '256', COMBINED: 'hello-web-$(UNDEFINED)-$(GREETING)',
      MY_DB_SERVICE_PORT: '5432', MY_DB_SERVICE_PORT_SQL: '5432', MY_DB_PORT_5432_TCP_PORT: '5432',
    }, 'env, envFrom, valueFrom, downward API, $(VAR) expansion, service variables');
    t.ok(body.env.MY_DB_SERVICE_HOST, 'the service host variable');
    t.equal(body.env.CM_1st, 'x', 'a prefixed key that makes a valid name');
    t.notOk('1st' in body.env, 'envFrom skips keys that are not variable names');
    t.notOk('FLOTILLA_LOG_LEVEL' in body.env, "the agent's own environment does not leak into containers");
    t.ok(body.cwd.startsWith(agent.dataDir), 'the working directory is under the node data dir');
    const rec = agent.containers().find((x) => x.container === 'web');
    t.equal(rec?.pid, webPid, 'the process is recorded on disk');
    t.equal(getPgid(webPid), webPid, 'the container leads its own process group');
  });

  await t.test('a killed container is restarted and counted', async (t) => {
    process.kill(webPid, 'SIGKILL');
    const p = await waitPod('web', 'restarted', (p) => cs(p)?.restartCount === 1 && !!cs(p)?.state?.running && cs(p)?.ready === true);
    t.match(cs(p)?.lastState, { terminated: { exitCode: 137, reason: 'Error' } }, 'lastState: killed by SIGKILL');
    const body = await ask(p.status!.podIP!);
    t.not(body.pid, webPid, 'a new process answers');
    webPid = body.pid;
  });

  await t.test('kubectl exec: in the container\'s environment and cgroup, with stdin, stderr and the exit code', { skip: kubectlMissing(t) ?? false }, async (t) => {
    const p = await getPod('web');
    const kubectl = (args: string[], input?: string) => spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, ...args], { encoding: 'utf8', timeout: 30_000, input });
    const env = kubectl(['exec', 'web', '--', 'printenv', 'POD_IP', 'GREETING']);
    t.equal(env.stdout, `${p.status!.podIP}\nhello\n`, 'kubectl exec -- printenv');
    t.equal(env.status, 0);
    const failing = kubectl(['exec', 'web', '--', 'sh', '-c', 'echo oops >&2; exit 3']);
    t.equal(failing.status, 3, 'the exit code comes back');
    t.match(failing.stderr, /oops/, 'stderr too');
    const cat = kubectl(['exec', '-i', 'web', '--', 'cat'], 'hello through stdin\n');
    t.equal(cat.stdout, 'hello through stdin\n', 'stdin reaches the command and its end closes it');
    const cg = kubectl(['exec', 'web', '--', 'cat', '/proc/self/cgroup']);
    t.match(cg.stdout, new RegExp(`memory:.*/flotilla/${p.metadata.uid}`), 'the command runs in the pod cgroup');
    // kubectl cp is tar over exec; the container's file system is the host's here.
    const dir = mkdtempSync(join(tmpdir(), 'agent-cp-'));
    writeFileSync(join(dir, 'in.txt'), 'copied in\n');
    mkdirSync(join(dir, 'into'));
    const cpIn = kubectl(['cp', join(dir, 'in.txt'), `web:${join(dir, 'into', 'in.txt')}`]);
    t.equal(cpIn.status, 0, `kubectl cp into the pod ${cpIn.stderr}`);
    t.equal(readFileSync(join(dir, 'into', 'in.txt'), 'utf8'), 'copied in\n');
    const cpOut = kubectl(['cp', `web:${join(dir, 'in.txt')}`, join(dir, 'out.txt')]);
    t.equal(cpOut.status, 0, `kubectl cp out of the pod ${cpOut.stderr}`);
    t.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'copied in\n');
    rmSync(dir, { recursive: true, force: true });
    const missing = kubectl(['exec', 'web', '-c', 'nope', '--', 'true']);
    t.not(missing.status, 0);
    t.match(missing.stderr, /container nope is not valid for pod web/);
    // -it: kubectl asks for a terminal only with stdin, and only when its own stdin is one, so it runs inside `script`'s pty, sized 33×120 by stty:
    // the command sees a terminal of that size (kubectl's resize message), stdout and stderr merged, and its exit code.
    const inTerminal = (cmd: string) => spawnSync('script', ['-qefc', `stty cols 120 rows 33; kubectl --kubeconfig ${cluster.kubeconfig} exec -it web -- sh -c '${cmd}'`, '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
    const tty = inTerminal('sleep 0.3; tty; stty size; echo to-stderr >&2; exit 4');
    t.match(tty.stdout, /\/dev\/pts\/\d+/, `the command has a terminal: ${JSON.stringify(tty.stdout)} ${tty.stderr}`);
    t.match(tty.stdout, /33 120/, 'of the client\'s size');
    t.match(tty.stdout, /to-stderr/, 'stderr arrives on the terminal');
    t.equal(tty.status, 4, 'the exit code comes back');
    const noTty = kubectl(['exec', 'web', '--', 'sh', '-c', 'tty || true']);
    t.match(noTty.stdout, /not a tty/, 'without -t: pipes');
  });

  await t.test('volumes are bind-mounted in a private mount namespace', { skip: kubectlMissing(t) ?? false }, async (t) => {
    const root = `/tmp/flotilla-volumes-${octet}`;
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    await c.create(resourcePath(kindByName('configmaps')!, 'default'), { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'vol-config' }, data: { 'app.conf': 'port=8080\n', other: 'x' } });
    await c.create(resourcePath(kindByName('secrets')!, 'default'), { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'vol-secret' }, data: { password: Buffer.from('hunter2').toString('base64') } });
    await c.create(path, pod('mounted', [{
      name: 'c', image: 'busybox', command: ['sleep', '1000'],
      volumeMounts: [
        { name: 'scratch', mountPath: `${root}/scratch` },
        { name: 'config', mountPath: `${root}/config`, readOnly: true },
        { name: 'config', mountPath: `${root}/app.conf`, subPath: 'app.conf' },
        { name: 'secret', mountPath: `${root}/secret` },
        { name: 'info', mountPath: `${root}/info` },
      ],
    }], {
      volumes: [
        { name: 'scratch', emptyDir: {} },
        { name: 'config', configMap: { name: 'vol-config' } },
        { name: 'secret', secret: { secretName: 'vol-secret', defaultMode: 0o400 } },
        { name: 'info', downwardAPI: { items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }] } },
      ],
    }));
    await c.create(path, pod('no-volume-source', [{ name: 'c', image: 'busybox', command: ['sleep', '1000'], volumeMounts: [{ name: 'v', mountPath: `${root}/nothing` }] }], {
      volumes: [{ name: 'v', configMap: { name: 'does-not-exist' } }],
    }));
    await waitPod('mounted', 'Running', (p) => p.status?.phase === 'Running');
    const sh = (script: string) => spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, 'exec', 'mounted', '--', 'sh', '-c', script], { encoding: 'utf8', timeout: 30_000 });
    t.equal(sh(`cat ${root}/config/app.conf`).stdout, 'port=8080\n', 'configMap files at the mountPath');
    t.equal(sh(`cat ${root}/app.conf`).stdout, 'port=8080\n', 'a subPath mounts one key as a file');
    t.equal(sh(`cat ${root}/secret/password`).stdout, 'hunter2', 'secret files');
    t.equal(sh(`stat -L -c %a ${root}/secret/password`).stdout.trim(), '400', 'defaultMode');
    t.equal(sh(`cat ${root}/info/name`).stdout, 'mounted', 'downwardAPI files');
    t.match(sh(`readlink ${root}/config/..data`).stdout, /^\.\./, 'the atomic writer\'s ..data link');
    t.match(sh(`echo x > ${root}/config/new 2>&1 || echo refused`).stdout, /Read-only file system|refused/, 'readOnly is enforced');
    t.equal(sh(`echo kept > ${root}/scratch/f && cat ${root}/scratch/f`).stdout, 'kept\n', 'emptyDir is writable');
    t.notOk(existsSync(`${root}/config/app.conf`), 'outside the pod\'s mount namespace the mount point is empty');
    await c.patch(resourcePath(kindByName('configmaps')!, 'default', 'vol-config'), { data: { 'app.conf': 'port=9090\n', other: null, added: 'y' } }, 'application/merge-patch+json');
    await waitFor('the new ConfigMap content in the volume', () => sh(`cat ${root}/config/app.conf`).stdout === 'port=9090\n', 20_000, 500);
    t.pass('a changed ConfigMap reaches the mounted files (periodic sync, atomic swap)');
    t.equal(sh(`ls ${root}/config`).stdout, 'added\napp.conf\n', 'a removed key is gone, an added one appears');
    t.equal(sh(`cat ${root}/app.conf`).stdout, 'port=8080\n', 'a subPath mount keeps the old content, as in Kubernetes');
    const uid = (await getPod('mounted')).metadata.uid!;
    t.ok(readFileSync('/proc/mounts', 'utf8').includes(`/pods/${uid}/volumes/secret tmpfs`), 'the secret volume is a tmpfs on the host, never on disk');
    const nv = await waitPod('no-volume-source', 'ContainerCreating', (p) => cs(p)?.state?.waiting?.message?.includes('does-not-exist'));
    t.match(cs(nv)?.state?.waiting, { reason: 'ContainerCreating', message: /configmap "does-not-exist" not found/ });
    await c.delete(`${path}/mounted`, { gracePeriodSeconds: 1 });
    await c.delete(`${path}/no-volume-source`, { gracePeriodSeconds: 0 });
    await waitFor('mounted gone', async () => !(await c.list<Pod>(path)).items.some((p) => p.metadata.name === 'mounted'), 20_000);
    t.notOk(readFileSync('/proc/mounts', 'utf8').includes(`/pods/${uid}/volumes/`), 'its tmpfs volumes are unmounted when the pod goes');
  });

  await t.test('an emptyDir on disk over its sizeLimit evicts the pod, as the kubelet does', async (t) => {
    const root = `/tmp/flotilla-evict-${octet}`;
    t.teardown(() => rmSync(root, { recursive: true, force: true }));
    await c.create(path, pod('hog', [{
      name: 'c', image: 'busybox', command: ['sh', '-c', `head -c 2097152 /dev/zero > ${root}/scratch/big; exec sleep 600`],
      volumeMounts: [{ name: 'scratch', mountPath: `${root}/scratch` }],
    }], { volumes: [{ name: 'scratch', emptyDir: { sizeLimit: '1Mi' } }], terminationGracePeriodSeconds: 1 }));
    const p = await waitPod('hog', 'evicted', (x) => x.status?.phase === 'Failed', 30_000);
    t.equal(p.status?.reason, 'Evicted');
    t.equal(p.status?.message, 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". ');
    t.match((p.status?.conditions as { type: string }[] | undefined)?.find((x) => x.type === 'DisruptionTarget'), { status: 'True', reason: 'TerminationByKubelet' }, 'a DisruptionTarget condition');
    t.notOk(cs(p)?.state?.running, 'its container is stopped');
    await sleep(2500);
    const later = await getPod('hog');
    t.equal(later.status?.phase, 'Failed', 'and stays stopped: an evicted pod is not restarted');
    t.notOk(cs(later)?.state?.running);
    await c.delete(`${path}/hog`);
  });

  await t.test('resource metrics: kubectl top pods and nodes', { skip: kubectlMissing(t) ?? false }, async (t) => {
    const pm = await waitFor('PodMetrics of web', async () => {
      try {
        return await c.get<{ containers: { name: string; usage: { cpu: string; memory: string } }[] }>('/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web');
      } catch {
        return undefined;
      }
    }, 20_000, 250);
    t.equal(pm.containers[0]?.name, 'web');
    t.ok(parseInt(pm.containers[0]!.usage.memory, 10) > 10_000, `the node process's memory is measured (${pm.containers[0]!.usage.memory})`);
    const top = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, 'top', 'pod', 'web', '--no-headers'], { encoding: 'utf8', timeout: 30_000 });
    t.match(top.stdout, /^web\s+\d+m\s+\d+Mi/, 'kubectl top pod');
    const topNode = spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, 'top', 'node', NODE, '--no-headers'], { encoding: 'utf8', timeout: 30_000 });
    t.match(topNode.stdout, new RegExp(`^${NODE}\\s+\\d+m\\s+\\d+%\\s+\\d+Mi`), 'kubectl top node');
  });

  await t.test('probes: readiness flips Ready, a failing liveness probe restarts the container with Events', async (t) => {
    // Healthy and ready unless files named after its pid exist in its working directory.
    const server = `
const http = require('http'); const fs = require('fs');
http.createServer((q, s) => {
  const bad = (f) => fs.existsSync(f + '-' + process.pid);
  if (q.url === '/healthz') { s.statusCode = bad('sick') ? 500 : 200; return s.end(); }
  if (q.url === '/ready') { s.statusCode = bad('unready') ? 503 : 200; return s.end(); }
  s.end(JSON.stringify({ pid: process.pid, env: {}, cwd: process.cwd() }));
}).listen(+process.env.PORT, process.env.POD_IP);`;
    await c.create(path, pod('probed', [{
      name: 'app', image: 'node', command: ['node', '-e', server], ports: [{ containerPort: 8080, name: 'http' }],
      // Started once it listens (node can take seconds to start on a loaded machine; liveness must not judge it before).
      startupProbe: { exec: { command: ['bash', '-c', 'test -n "$POD_IP" && exec 3<>"/dev/tcp/$POD_IP/8080"'] }, periodSeconds: 1, failureThreshold: 120 },
      readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 1, failureThreshold: 1 },
      livenessProbe: { httpGet: { path: '/healthz', port: 8080 }, periodSeconds: 1, failureThreshold: 2 },
    }]));
    await c.create(path, pod('no-listener', [{
      name: 'c', image: 'busybox', command: ['sleep', '1000'], ports: [{ containerPort: 8080 }],
      readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
    }]));
    const isReady = (p: Pod) => p.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True';
    const p1 = await waitPod('probed', 'Ready', (p) => isReady(p) && cs(p)?.started === true);
    const { pid, cwd } = await ask(p1.status!.podIP!);
    writeFileSync(`${cwd}/unready-${pid}`, '');
    const p2 = await waitPod('probed', 'not Ready', (p) => !isReady(p));
    t.match(p2.status?.conditions?.find((x) => x.type === 'ContainersReady'), { status: 'False', reason: 'ContainersNotReady' });
    t.equal(cs(p2)?.state?.running !== undefined, true, 'still running: readiness never restarts');
    rmSync(`${cwd}/unready-${pid}`);
    await waitPod('probed', 'Ready again', isReady);
    t.pass('readiness recovered');
    writeFileSync(`${cwd}/sick-${pid}`, '');
    const p3 = await waitPod('probed', 'restarted by its liveness probe', (p) => cs(p)?.restartCount === 1 && !!cs(p)?.state?.running);
    t.not((await ask(p3.status!.podIP!)).pid, pid, 'a new process');
    const events = await waitFor('the probe events', async () => {
      const l = await c.list<{ reason: string; message: string; involvedObject: { name: string } }>(resourcePath(kindByName('events')!, 'default'));
      const mine = l.items.filter((e) => e.involvedObject.name === 'probed');
      return mine.some((e) => e.reason === 'Killing') ? mine : undefined;
    });
    t.ok(events.some((e) => e.reason === 'Unhealthy' && e.message === 'Liveness probe failed: HTTP probe failed with statuscode: 500'), 'Unhealthy event for the liveness failure');
    t.ok(events.some((e) => e.reason === 'Unhealthy' && e.message === 'Readiness probe failed: HTTP probe failed with statuscode: 503'), 'Unhealthy event for the readiness failure');
    t.ok(events.some((e) => e.reason === 'Killing' && e.message === 'Container app failed liveness probe, will be restarted'));
    const nl = await getPod('no-listener');
    t.equal(isReady(nl), false, 'a tcpSocket readiness probe that cannot connect keeps the pod not Ready');
    t.equal(cs(nl)?.started, true);
    const tcpEvent = await waitFor('the tcp probe event', async () => {
      const l = await c.list<{ reason: string; message: string; involvedObject: { name: string } }>(resourcePath(kindByName('events')!, 'default'));
      return l.items.find((e) => e.involvedObject.name === 'no-listener' && e.reason === 'Unhealthy');
    });
    t.match(tcpEvent.message, /^Readiness probe failed: dial tcp 127\.[0-9.]+:8080: .*ECONNREFUSED/);
    for (const n of ['probed', 'no-listener']) await c.delete(`${path}/${n}`, { gracePeriodSeconds: 0 });
  });

  await t.test('resource limits are enforced by the kernel through a pod cgroup', async (t) => {
    const node = await c.get<Node>(resourcePath(NODES, '', NODE));
    const ready = node.status?.conditions?.find((x) => x.type === 'Ready');
    t.match(ready?.message, /resource limits: (cgroup v[12]|no cgroup)/, 'the Ready condition says how limits are enforced');
    if (!/cgroup v1/.test(ready?.message ?? '')) {
      t.comment('this test measures cgroup v1 files; the node says it has none here');
      return;
    }
    await c.create(path, pod('hog', [{
      name: 'c', image: 'node', command: ['node', '-e', 'const a = []; setInterval(() => a.push(Buffer.alloc(16 << 20, 1)), 20)'],
      resources: { limits: { memory: '128Mi' } },
    }], { restartPolicy: 'Never' }));
    await c.create(path, pod('spin', [{
      name: 'c', image: 'busybox', command: ['sh', '-c', 'while :; do :; done'], resources: { requests: { cpu: '100m' }, limits: { cpu: '200m' } },
    }], { restartPolicy: 'Never' }));
    const hog = await waitPod('hog', 'OOMKilled', (p) => p.status?.phase === 'Failed', 30_000);
    t.match(cs(hog)?.state?.terminated, { exitCode: 137, reason: 'OOMKilled' }, 'killed by the kernel for its memory limit, and said so');
    await waitPod('spin', 'Running', (p) => p.status?.phase === 'Running');
    const rec = await waitFor('the spinner', () => agent.containers().find((x) => x.container === 'c' && processAlive(x.pid) && readFileSync(`/proc/${x.pid}/cmdline`, 'utf8').includes('while')));
    const cgLine = (ctrl: string) => readFileSync(`/proc/${rec.pid}/cgroup`, 'utf8').split('\n').find((l) => l.split(':')[1]?.split(',').includes(ctrl))!.split(':')[2];
    const cpuDir = `/sys/fs/cgroup/cpu${cgLine('cpu')}`;
    const acctDir = `/sys/fs/cgroup/cpuacct${cgLine('cpuacct')}`;
    t.match(cgLine('memory'), new RegExp(`/flotilla/${rec.podUid}$`), 'the process is in its pod cgroup');
    t.equal(readFileSync(`${cpuDir}/cpu.cfs_quota_us`, 'utf8').trim(), '20000', 'cpu limit 200m = 20 ms per 100 ms period');
    t.equal(readFileSync(`${cpuDir}/cpu.shares`, 'utf8').trim(), '102', 'cpu request 100m = 102 shares');
    const u0 = Number(readFileSync(`${acctDir}/cpuacct.usage`, 'utf8'));
    const w0 = process.hrtime.bigint();
    await sleep(2000);
    const used = Number(readFileSync(`${acctDir}/cpuacct.usage`, 'utf8')) - u0;
    const wall = Number(process.hrtime.bigint() - w0);
    const cores = used / wall;
    t.ok(cores < 0.4, `a busy loop is held near its limit of 0.2 cores (used ${cores.toFixed(3)})`);
    t.ok(cores > 0.02, 'and does run');
    t.match(readFileSync(`${cpuDir}/cpu.stat`, 'utf8'), /nr_throttled [1-9]/, 'the kernel throttled it');
    for (const n of ['hog', 'spin']) await c.delete(`${path}/${n}`);
  });

  await t.test('reasons: an image that cannot run, missing config, exits under each restartPolicy', async (t) => {
    await c.create(path, pod('no-image', [{ name: 'c', image: 'nginx:1.25' }]));
    await c.create(path, pod('no-config', [{ name: 'c', image: 'busybox', command: ['sleep', '100'], env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'missing', key: 'k' } } }] }]));
    await c.create(path, pod('never-fails', [{ name: 'c', image: 'busybox', command: ['sh', '-c', 'echo bye; exit 3'] }], { restartPolicy: 'Never' }));
    await c.create(path, pod('onfailure-ok', [{ name: 'c', image: 'busybox', command: ['sh', '-c', 'exit 0'] }], {
      restartPolicy: 'OnFailure', initContainers: [{ name: 'init', image: 'busybox', command: ['sh', '-c', 'exit 0'] }],
    }));
    await c.create(path, pod('crashloop', [{ name: 'c', image: 'busybox', command: ['sh', '-c', 'exit 1'] }]));
    // Two pods on 0.0.0.0 and the same port: the second cannot bind, and its status says so.
    const anyPort = 20_000 + octet * 10;
    const bindAny = `require('net').createServer().listen(${anyPort}, '0.0.0.0')`;
    await c.create(path, pod('any-1', [{ name: 'c', image: 'node', command: ['node', '-e', bindAny] }]));
    await waitPod('any-1', 'Running', (p) => p.status?.phase === 'Running');
    await sleep(500);
    await c.create(path, pod('any-2', [{ name: 'c', image: 'node', command: ['node', '-e', bindAny] }], { restartPolicy: 'Never' }));
    const ni = await waitPod('no-image', 'ErrImageNeverPull', (p) => cs(p)?.state?.waiting?.reason === 'ErrImageNeverPull');
    t.match(cs(ni)?.state?.waiting?.message, /nginx:1\.25.*command/);
    t.equal(ni.status?.phase, 'Pending');
    const nc = await waitPod('no-config', 'CreateContainerConfigError', (p) => cs(p)?.state?.waiting?.reason === 'CreateContainerConfigError');
    t.match(cs(nc)?.state?.waiting?.message, /configmap "missing" not found/);
    const nf = await waitPod('never-fails', 'Failed', (p) => p.status?.phase === 'Failed');
    t.match(cs(nf)?.state, { terminated: { exitCode: 3, reason: 'Error' } });
    t.equal(cs(nf)?.restartCount, 0, 'restartPolicy Never: not restarted');
    const ok = await waitPod('onfailure-ok', 'Succeeded', (p) => p.status?.phase === 'Succeeded');
    t.match((ok.status as any).initContainerStatuses?.[0], { name: 'init', state: { terminated: { exitCode: 0, reason: 'Completed' } } });
    t.equal(cs(ok)?.state?.terminated?.reason, 'Completed');
    const cl = await waitPod('crashloop', 'CrashLoopBackOff', (p) => cs(p)?.state?.waiting?.reason === 'CrashLoopBackOff' && cs(p)?.restartCount >= 1);
    t.match(cs(cl)?.state?.waiting?.message, /back-off \ds restarting failed container=c pod=crashloop_default/);
    t.match(cs(cl)?.lastState, { terminated: { exitCode: 1 } });
    t.equal(cl.status?.phase, 'Running', 'a container in back-off keeps the pod Running (restartPolicy Always)');
    const restarted = await waitPod('crashloop', 'restarted after the back-off', (p) => cs(p)?.restartCount >= 2);
    t.ok(cs(restarted)!.restartCount >= 2);
    const clash = await waitPod('any-2', 'Failed', (p) => p.status?.phase === 'Failed', 20_000);
    t.match(cs(clash)?.state?.terminated?.message, /could not bind its port: .*EADDRINUSE.*bind \$POD_IP instead/, 'a port collision on 0.0.0.0 is said in the status');
    for (const n of ['no-image', 'no-config', 'never-fails', 'onfailure-ok', 'crashloop', 'any-1', 'any-2']) await c.delete(`${path}/${n}`);
  });

  await t.test('a restartable init container (sidecar) starts first, keeps running, and stops when the pod completes', async (t) => {
    await c.create(path, pod('with-sidecar', [{ name: 'main', image: 'busybox', command: ['sh', '-c', 'sleep 2; exit 0'] }], {
      restartPolicy: 'Never',
      initContainers: [
        { name: 'side', image: 'busybox', command: ['sleep', '1000'], restartPolicy: 'Always' },
        { name: 'setup', image: 'busybox', command: ['sh', '-c', 'exit 0'] },
      ],
    }));
    const running = await waitPod('with-sidecar', 'main running', (p) => p.status?.phase === 'Running' && !!cs(p)?.state?.running);
    const inits = (running.status as any).initContainerStatuses as Record<string, any>[];
    t.match(inits[0], { name: 'side', started: true, state: { running: {} } }, 'the sidecar runs alongside');
    t.match(inits[1], { name: 'setup', state: { terminated: { exitCode: 0 } } }, 'the next init container ran after it started');
    t.equal(running.status?.conditions?.find((x) => x.type === 'Initialized')?.status, 'True');
    const done = await waitPod('with-sidecar', 'Succeeded', (p) => p.status?.phase === 'Succeeded', 20_000);
    t.equal(cs(done)?.state?.terminated?.exitCode, 0);
    const side = await waitPod('with-sidecar', 'the sidecar stopped', (p) => !!(p.status as any).initContainerStatuses[0].state.terminated, 20_000);
    t.equal((side.status as any).initContainerStatuses[0].restartCount, 0, 'the sidecar was stopped when the main container completed, not restarted');
    await c.delete(`${path}/with-sidecar`);
  });

  await t.test('a deleted pod is stopped gracefully; its object goes only once its processes are gone', async (t) => {
    await c.create(path, pod('stubborn', [{ name: 'c', image: 'busybox', command: ['sh', '-c', "trap '' TERM; echo trapped; while :; do sleep 1; done"] }], { terminationGracePeriodSeconds: 3 }));
    await waitPod('stubborn', 'Running', (p) => p.status?.phase === 'Running');
    const rec = await waitFor('the record', () => agent.containers().find((x) => x.container === 'c' && processAlive(x.pid)));
    // Only once its shell ignores SIGTERM (the process starts with its mounts set up first: the trap is not there at once).
    await waitFor('the trap set', () => (existsSync(rec.logFile) && readFileSync(rec.logFile, 'utf8').includes('trapped')) || undefined, 20_000, 50);
    await c.delete(`${path}/stubborn`);
    await sleep(1000);
    const during = await getPod('stubborn');
    t.ok(during.metadata.deletionTimestamp, 'still there during the grace period');
    t.ok(processAlive(rec.pid), 'a process ignoring SIGTERM runs on during the grace period');
    await waitFor('the pod object gone', async () => {
      try {
        await getPod('stubborn');
        return false;
      } catch (e) {
        return e instanceof ApiClientError && e.code === 404;
      }
    }, 20_000);
    t.notOk(processAlive(rec.pid), 'the process was killed before the object was removed');
  });

  await t.test('logs: kubectl logs [-f] [--previous] and flotilla logs, proxied by the API server to the agent', { skip: kubectlMissing(t) ?? false }, async (t) => {
    const script = 'n=$(cat n 2>/dev/null || echo 0); echo $((n+1)) > n; echo run-$n line-a; echo run-$n line-b; sleep 2; echo run-$n late; exit 1';
    await c.create(path, pod('talker', [{ name: 'talk', image: 'busybox', command: ['sh', '-c', script] }]));
    const running = await waitPod('talker', 'its second run', (p) => cs(p)?.restartCount >= 1 && !!cs(p)?.state?.running, 20_000);
    const run = cs(running)!.restartCount as number;
    const kubectl = (...args: string[]) => spawnSync('kubectl', ['--kubeconfig', cluster.kubeconfig, ...args], { encoding: 'utf8', timeout: 30_000 });
    const prev = kubectl('logs', 'talker', '--previous');
    t.equal(prev.stdout, `run-${run - 1} line-a\nrun-${run - 1} line-b\nrun-${run - 1} late\n`, 'kubectl logs --previous: the run before');
    t.equal(prev.status, 0);
    // -f follows the current run to its end, then kubectl exits.
    const follow = await new Promise<{ out: string; code: number | null }>((resolve) => {
      const child = spawn('kubectl', ['--kubeconfig', cluster.kubeconfig, 'logs', '-f', 'talker'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
      const timer = setTimeout(() => child.kill(), 20_000);
      child.on('exit', (code) => { clearTimeout(timer); resolve({ out, code }); });
    });
    t.match(follow.out, new RegExp(`run-${run} line-a\\nrun-${run} line-b\\nrun-${run} late\\n$`), 'kubectl logs -f streamed the run until it ended');
    t.equal(follow.code, 0, 'and returned when the container stopped');
    // `flotilla logs` driven in-process (the same verb the CLI runs), to spare a process start per call.
    const flotilla = async (...args: string[]) => {
      let stdout = '';
      let stderr = '';
      await logsMain(['--server', cluster.urls.join(','), ...args], { out: (x) => { stdout += x; }, err: (x) => { stderr += x; }, stdin: process.stdin });
      // The verb sets the exit code on an error, as the CLI must; this test process must not keep it.
      if (stderr) process.exitCode = 0;
      return { stdout, stderr };
    };
    t.equal((await flotilla('talker', '--previous', '--tail', '1')).stdout.trim().split('\n').length, 1, 'flotilla logs --tail 1');
    t.match((await flotilla('talker', '--previous', '--tail', '1')).stdout, /^run-\d+ late\n$/);
    const stamped = (await flotilla('pod/talker', '--previous', '--timestamps')).stdout.trim().split('\n');
    t.ok(stamped.length === 3 && stamped.every((l) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z run-\d+ /.test(l)), '--timestamps prefixes RFC 3339 times');
    const times = stamped.map((l) => Date.parse(l.split(' ')[0]));
    t.ok(times[2] - times[1] >= 1500, 'the times are when the lines were written (2 s apart around the sleep)');
    t.equal((await flotilla('talker', '--previous', '--limit-bytes', '4')).stdout, 'run-', '--limit-bytes');
    t.equal((await flotilla('talker', '--since', '1h', '--previous')).stdout.split('\n').length, 4, '--since keeps recent lines');
    const bad = kubectl('logs', 'talker', '-c', 'nope');
    t.match(bad.stderr, /container nope is not valid for pod talker/);
    t.match((await flotilla('talker', '-c', 'nope')).stderr, /container nope is not valid for pod talker/, 'flotilla logs reports it too');
    await c.delete(`${path}/talker`, { gracePeriodSeconds: 0 });
    // Rotation by size (64Ki, 3 files here): copied aside and truncated; only the current file is served.
    const chatty = 'for b in 1 2 3 4 5 6; do i=0; while [ $i -lt 2000 ]; do echo batch-$b-line-$i-xxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; sleep 0.5; done; echo last-line; sleep 1000';
    await c.create(path, pod('chatty', [{ name: 'c', image: 'busybox', command: ['sh', '-c', chatty] }]));
    await waitFor('the last line', async () => (await flotilla('chatty', '--tail', '1')).stdout === 'last-line\n', 30_000, 300);
    const rec = agent.containers().find((x) => x.container === 'c' && x.logFile.includes('/logs/c/') && readFileSync(`/proc/${x.pid}/cmdline`, 'utf8').includes('batch'));
    const logDir = rec!.logFile.slice(0, rec!.logFile.lastIndexOf('/'));
    const files = readdirSync(logDir).filter((f) => /^0\.log(\.\d+)?$/.test(f));
    t.ok(files.length === 3 && files.includes('0.log'), `the current file and 2 rotated ones are kept (${files.join(' ')})`);
    t.ok(statSync(rec!.logFile).size < 64 * 1024, 'the current file is under the limit');
    await c.delete(`${path}/chatty`, { gracePeriodSeconds: 0 });
  });

  await t.test('kill -9 of the agent: its containers are adopted, none runs twice; those of deleted pods are stopped', async (t) => {
    await c.create(path, pod('doomed', [{ name: 'c', image: 'busybox', command: ['sleep', '1000'] }]));
    await waitPod('doomed', 'Running', (p) => p.status?.phase === 'Running');
    const doomed = await waitFor('its record', () => agent.containers().find((x) => x.container === 'c' && processAlive(x.pid)));
    const before = await getPod('web');
    await agent.kill('SIGKILL');
    t.ok(processAlive(webPid), 'containers outlive the agent');
    // Gone from the API while the agent is down (force deletion: nobody confirms it).
    await c.delete(`${path}/doomed`, { gracePeriodSeconds: 0 });
    await agent.restart();
    await waitFor('the orphan stopped', () => !processAlive(doomed.pid), 15_000);
    t.pass('the process of the pod deleted meanwhile was stopped');
    await sleep(1500);
    const after = await getPod('web');
    t.equal(cs(after)?.restartCount, cs(before)?.restartCount, 'restartCount unchanged');
    t.equal((await ask(after.status!.podIP!)).pid, webPid, 'the same process still serves');
    t.same(agent.containers().filter((x) => x.container === 'web').map((x) => x.pid), [webPid], 'one process for the container, no duplicate');
    t.match(await agent.metrics(), /flotilla_agent_adoptions_total 1/);
    // The adopted process is still supervised: killed, it is restarted.
    process.kill(webPid, 'SIGKILL');
    const p = await waitPod('web', 'restarted after adoption', (p) => cs(p)?.restartCount === cs(before)!.restartCount + 1 && !!cs(p)?.state?.running);
    t.equal(cs(p)?.lastState?.terminated?.reason, 'ContainerStatusUnknown', 'an adopted process exit code is unknown, and said so');
  });
});

function getPgid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}
