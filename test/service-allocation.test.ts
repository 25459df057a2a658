// Service cluster IPs and node ports are allocated when the write is
// applied (the state machine), so concurrent creates on different members
// never get the same address or port; taken or out-of-range requests get
// Kubernetes' errors; deletes and type changes free what they held; a
// restored snapshot knows what is taken.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { request } from 'undici';
import { encodeCommand } from '../apiserver/command.ts';
import { ServiceAllocations, parseServiceRanges } from '../apiserver/service-allocation.ts';
import { ObjectStore } from '../apiserver/store.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing } from '../harness/kubectl.ts';
import { tempDir } from '../harness/procs.ts';

type Obj = Record<string, any>;
const RANGES = { clusterIPRange: '127.1.0.0/24', nodePortRange: '30000-30099' };
const svc = (name: string, spec: Obj = {}): Obj => ({
  apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default', uid: `u-${name}` },
  spec: { type: 'ClusterIP', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }], ...spec },
});

function newStore() {
  const store = new ObjectStore();
  let index = 0;
  const base = { res: '/services', ns: 'default', user: 'u', ts: '2026-01-01T00:00:00Z' };
  const create = (o: Obj, ranges = RANGES) =>
    store.apply({ index: ++index, term: 1, data: encodeCommand({ ...base, op: 'create', verb: 'create', name: o.metadata.name, obj: JSON.stringify(o), svc: ranges }) });
  const update = (o: Obj) =>
    store.apply({ index: ++index, term: 1, data: encodeCommand({ ...base, op: 'update', verb: 'update', name: o.metadata.name, obj: JSON.stringify(o), pre: {}, svc: RANGES }) });
  const del = (name: string) =>
    store.apply({ index: ++index, term: 1, data: encodeCommand({ ...base, op: 'delete', verb: 'delete', name, pre: {}, grace: 0 }) });
  const get = (name: string): Obj => JSON.parse(store.get('/services', 'default', name)!.json);
  return { store, create, update, del, get };
}

t.test('ranges are checked when a server starts', async (t) => {
  t.throws(() => parseServiceRanges({ clusterIPRange: 'nope', nodePortRange: '30000-32767' }), /--service-cluster-ip-range/);
  t.throws(() => parseServiceRanges({ clusterIPRange: '127.1.0.0/31', nodePortRange: '30000-32767' }), /too small/);
  t.throws(() => parseServiceRanges({ clusterIPRange: '127.1.0.0/16', nodePortRange: '32767-30000' }), /--service-node-port-range/);
  t.ok(parseServiceRanges({ clusterIPRange: '127.1.0.0/16', nodePortRange: '30000-32767' }));
});

t.test('allocation at apply time', async (t) => {
  const s = newStore();
  t.ok(s.create(svc('kubernetes')).ok);
  t.equal(s.get('kubernetes').spec.clusterIP, '127.1.0.1', 'default/kubernetes gets the first address, as in Kubernetes');
  t.same(s.get('kubernetes').spec.clusterIPs, ['127.1.0.1']);
  t.same(s.get('kubernetes').spec.ipFamilies, ['IPv4']);
  t.equal(s.get('kubernetes').spec.ipFamilyPolicy, 'SingleStack');

  const ips = new Set<string>();
  for (let i = 0; i < 50; i++) {
    t.ok(s.create(svc(`a${i}`)).ok);
    ips.add(s.get(`a${i}`).spec.clusterIP);
  }
  t.equal(ips.size, 50, 'every Service its own address');
  const inDynamicBand = [...ips].every((ip) => Number(ip.split('.')[3]) >= 17 && Number(ip.split('.')[3]) <= 254);
  t.ok(inDynamicBand, 'dynamic addresses come from above the static band (16 of a /24) and never the broadcast address');

  // Asked-for addresses.
  t.ok(s.create(svc('fixed', { clusterIP: '127.1.0.5' })).ok, 'a free address in the range can be asked for');
  const taken = s.create(svc('fixed2', { clusterIP: '127.1.0.5' }));
  t.notOk(taken.ok);
  if (!taken.ok) {
    t.equal(taken.error.code, 422);
    t.equal(taken.error.message, 'Service "fixed2" is invalid: spec.clusterIPs: Invalid value: ["127.1.0.5"]: failed to allocate IP 127.1.0.5: provided IP is already allocated');
  }
  const outside = s.create(svc('outside', { clusterIP: '10.0.0.5' }));
  t.notOk(outside.ok);
  if (!outside.ok) t.match(outside.error.message, /the provided IP \(10\.0\.0\.5\) is not in the valid range\. The range of valid IPs is 127\.1\.0\.0\/24/);
  t.notOk(s.create(svc('bcast', { clusterIP: '127.1.0.255' })).ok, 'the broadcast address is not in the valid range');
  t.equal(s.store.get('/services', 'default', 'fixed2'), undefined, 'a refused create stores nothing');

  // Headless and ExternalName hold no address.
  t.ok(s.create(svc('headless', { clusterIP: 'None' })).ok);
  t.same(s.get('headless').spec.clusterIPs, ['None']);
  t.ok(s.create(svc('ext', { type: 'ExternalName', externalName: 'example.com', ports: [] })).ok);
  t.equal(s.get('ext').spec.clusterIP, undefined);

  // Node ports.
  t.ok(s.create(svc('np', { type: 'NodePort', ports: [{ name: 'a', port: 80, protocol: 'TCP' }, { name: 'b', port: 81, protocol: 'TCP', nodePort: 30001 }] })).ok);
  const np = s.get('np').spec.ports;
  t.equal(np[1].nodePort, 30001, 'the asked-for port');
  t.ok(np[0].nodePort >= 30016 && np[0].nodePort <= 30099, `a dynamic port above the static band (${np[0].nodePort})`);
  const dupPort = s.create(svc('np2', { type: 'NodePort', ports: [{ port: 80, protocol: 'TCP', nodePort: 30001 }] }));
  t.notOk(dupPort.ok);
  if (!dupPort.ok) t.equal(dupPort.error.message, 'Service "np2" is invalid: spec.ports[0].nodePort: Invalid value: 30001: provided port is already allocated');
  const badPort = s.create(svc('np3', { type: 'NodePort', ports: [{ port: 80, protocol: 'TCP', nodePort: 8080 }] }));
  t.notOk(badPort.ok);
  if (!badPort.ok) t.match(badPort.error.message, /spec\.ports\[0\]\.nodePort: Invalid value: 8080: provided port is not in the valid range\. The range of valid ports is 30000-30099/);
  t.notOk(JSON.stringify(s.store.list('/services', 'default')).includes('"np3"'), 'nothing of the refused Service is stored');
  const tcpUdp = s.create(svc('dns', { type: 'NodePort', ports: [{ name: 't', port: 53, protocol: 'TCP' }, { name: 'u', port: 53, protocol: 'UDP' }] }));
  t.ok(tcpUdp.ok);
  const dnsPorts = s.get('dns').spec.ports;
  t.equal(dnsPorts[0].nodePort, dnsPorts[1].nodePort, 'TCP and UDP of one port share a node port');
  t.ok(s.create(svc('lb', { type: 'LoadBalancer', externalTrafficPolicy: 'Local' })).ok);
  t.ok(s.get('lb').spec.healthCheckNodePort >= 30000, 'a LoadBalancer with externalTrafficPolicy Local gets a health check node port');
  t.ok(s.create(svc('lb-no-np', { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false })).ok);
  t.equal(s.get('lb-no-np').spec.ports[0].nodePort, undefined, 'allocateLoadBalancerNodePorts: false');

  // Updates and deletes free what they give up.
  const ip5 = s.get('fixed').spec.clusterIP;
  t.ok(s.del('fixed').ok);
  t.ok(s.create(svc('fixed3', { clusterIP: ip5 })).ok, 'a deleted Service\'s address is free again');
  const np1 = s.get('np');
  np1.spec.type = 'ClusterIP';
  for (const p of np1.spec.ports) delete p.nodePort;
  t.ok(s.update(np1).ok, 'NodePort → ClusterIP');
  t.ok(s.create(svc('np4', { type: 'NodePort', ports: [{ port: 80, protocol: 'TCP', nodePort: 30001 }] })).ok, 'its node ports are free again');
  const ext = s.get('ext');
  ext.spec = { type: 'ClusterIP', ports: [{ port: 80, protocol: 'TCP', targetPort: 80 }] };
  t.ok(s.update(ext).ok, 'ExternalName → ClusterIP');
  t.match(s.get('ext').spec.clusterIP, /^127\.1\.0\./, 'gets an address');
  const steal = s.get('a1');
  steal.spec.clusterIP = s.get('a2').spec.clusterIP;
  steal.spec.clusterIPs = [steal.spec.clusterIP];
  t.notOk(s.update(steal).ok, 'an update cannot take another Service\'s address');

  // A snapshot restored elsewhere knows what is taken.
  const counts = s.store.serviceAllocations.counts;
  const copy = new ObjectStore();
  copy.restore(s.store.snapshot(), s.store.revision);
  t.same(copy.serviceAllocations.counts, counts, 'the restored store holds the same allocations');
  const again = copy.apply({
    index: s.store.revision + 1, term: 1,
    data: encodeCommand({ res: '/services', ns: 'default', name: 'x', user: 'u', verb: 'create', ts: '2026-01-01T00:00:00Z', op: 'create', obj: JSON.stringify(svc('x', { clusterIP: ip5 })), svc: RANGES }),
  });
  t.notOk(again.ok, 'and refuses a taken address');
});

t.test('a full range is an internal error, and a forged range a no-op', async (t) => {
  const s = newStore();
  const tiny = { clusterIPRange: '127.1.0.0/30', nodePortRange: '30000-30001' };
  t.ok(s.create(svc('one'), tiny).ok);
  t.ok(s.create(svc('two'), tiny).ok);
  const full = s.create(svc('three'), tiny);
  t.notOk(full.ok);
  if (!full.ok) {
    t.equal(full.error.code, 500);
    t.equal(full.error.message, 'Internal error occurred: failed to allocate a serviceIP: range is full');
  }
  const forged = s.create(svc('forged'), { clusterIPRange: 'garbage', nodePortRange: '1-2' });
  t.notOk(forged.ok);
  t.equal(s.store.rejectedEntries, 1, 'a malformed range in a command is a counted no-op, never a throw');
  const a = new ServiceAllocations();
  t.equal(a.admit('ns/x', 'x', { spec: { type: 'NodePort', ports: [{ port: 1 }] } }, undefined), undefined, 'no ranges in the command: the defaults');
});

t.test('through the API: concurrent creates on every member, kubectl', async (t) => {
  const c = await FlotillaCluster.start(3, { args: ['--service-cluster-ip-range', '127.2.0.0/24', '--service-node-port-range', '31000-31199'] });
  t.teardown(() => c.stop());
  const post = (url: string, body: Obj) => request(`${url}/api/v1/namespaces/default/services`, {
    method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' },
  }).then(async (r) => ({ status: r.statusCode, body: (await r.body.json()) as Obj }));
  // 60 creates at once, 20 through each member: the members forward to the leader, which decides in log order.
  const made = await Promise.all(Array.from({ length: 60 }, (_, i) =>
    post(c.urls[i % 3]!, { apiVersion: 'v1', kind: 'Service', metadata: { name: `s${i}` }, spec: { type: 'NodePort', ports: [{ port: 80 }] } })));
  t.same(made.map((m) => m.status), Array(60).fill(201), 'all created');
  const ips = made.map((m) => m.body.spec.clusterIP);
  const ports = made.map((m) => m.body.spec.ports[0].nodePort);
  t.equal(new Set(ips).size, 60, 'no address given twice');
  t.equal(new Set(ports).size, 60, 'no node port given twice');
  t.ok(ips.every((ip) => ip.startsWith('127.2.0.')), 'from --service-cluster-ip-range');
  t.ok(ports.every((p) => p >= 31000 && p <= 31199), 'from --service-node-port-range');
  const taken = await post(c.urls[1]!, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'dup' }, spec: { clusterIP: ips[0], ports: [{ port: 80 }] } });
  t.equal(taken.status, 422);
  t.equal(taken.body.message, `Service "dup" is invalid: spec.clusterIPs: Invalid value: ["${ips[0]}"]: failed to allocate IP ${ips[0]}: provided IP is already allocated`);

  const missing = kubectlMissing(t);
  if (missing) return;
  const cache = tempDir('kubectl-cache');
  const kubectl = (...args: string[]) => spawnSync('kubectl', ['--kubeconfig', c.kubeconfig, '--cache-dir', cache, ...args], { encoding: 'utf8', timeout: 60_000 });
  const np = kubectl('create', 'service', 'nodeport', 'web', '--tcp=8080:80', '--node-port=31005');
  t.equal(np.status, 0, np.stderr);
  const get = kubectl('get', 'service', 'web', '--no-headers');
  t.match(get.stdout, /^web\s+NodePort\s+127\.2\.0\.\d+\s+<none>\s+8080:31005\/TCP/, 'kubectl shows the cluster IP and node port');
  const again = kubectl('create', 'service', 'nodeport', 'web2', '--tcp=8080:80', '--node-port=31005');
  t.not(again.status, 0);
  t.match(again.stderr, /spec\.ports\[0\]\.nodePort: Invalid value: 31005: provided port is already allocated/, 'kubectl shows Kubernetes\' error');
  t.equal(kubectl('delete', 'service', 'web').status, 0);
  const reuse = kubectl('create', 'service', 'nodeport', 'web3', '--tcp=8080:80', '--node-port=31005');
  t.equal(reuse.status, 0, `the freed port can be taken again ${reuse.stderr}`);
});
