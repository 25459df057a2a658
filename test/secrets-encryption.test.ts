// Secrets encrypted at rest and kept off the event stream, on a real
// 3-server cluster with a key file (EncryptionConfiguration): a value planted
// with the real kubectl reads back through GET, LIST and WATCH, and appears
// nowhere else — not in any decoded Raft log entry, snapshot, LevelDB key or
// value (read back through LevelDB, which compresses its blocks), any file of
// the data directories, the NATS stream (its messages and its files) or any
// log. Key rotation (a new first key, restart, `flotilla secrets rotate`)
// keeps every Secret readable and lets the old key go; a malformed key file
// is refused at start; tampered ciphertext is an error for that Secret only.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { unpack } from 'msgpackr';
import { connect } from 'nats';
import t from 'tap';
import { request } from 'undici';
import { decodeEvent } from '../api/events.ts';
import { decodeCommand } from '../apiserver/command.ts';
import { encryptionConfigYaml, newKeySecret } from '../api/encryption-config.ts';
import { SecretSealer } from '../apiserver/encryption.ts';
import { MemberDirectory } from '../apiserver/http/members.ts';
import { ObjectStore } from '../apiserver/store.ts';
import { main as rotateMain } from '../bin/commands/secrets.ts';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { kubectlMissing, runKubectl } from '../harness/kubectl.ts';
import { NatsServers } from '../harness/nats.ts';
import { startFlotilla, tempDir, waitFor } from '../harness/procs.ts';
import { decodeEntry, decodeProposal } from '../raft/codec.ts';
import { decodeSnapshotEnvelope } from '../raft/node.ts';
import { SNAP_META_KEY, entryIndexOf, openRecord, sealRecord, snapChunkKey } from '../raft/storage.ts';
import { EntryType } from '../raft/types.ts';

const skip = kubectlMissing(t);
const SEALED = 'k8s:enc:aesgcm:v1:';

t.test('Secrets at rest, on the stream, in logs; rotation; malformed keys; tampering', { skip, timeout: 240_000 }, async (t) => {
  const work = tempDir('secrets-enc');
  const cache = join(work, 'kube-cache');
  mkdirSync(cache);
  const keyFile = join(work, 'encryption.yaml');
  const key1 = { name: 'key1', secret: newKeySecret() };
  const key2 = { name: 'key2', secret: newKeySecret() };
  writeFileSync(keyFile, encryptionConfigYaml([key1]), { mode: 0o600 });

  // The planted value, and the forms it could leak in.
  const VALUE = `pl4nted-${randomBytes(12).toString('hex')}`;
  const forms = [VALUE, Buffer.from(VALUE).toString('base64'), Buffer.from(VALUE).toString('hex')].map((s) => Buffer.from(s));
  const leaks = (b: Uint8Array): string | undefined => {
    const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
    return forms.find((f) => buf.includes(f))?.toString();
  };

  const nats = await NatsServers.start(1);
  t.teardown(() => nats.stop());
  // Small snapshot interval: the Secrets end up in snapshots as well as in log entries.
  const cluster = await FlotillaCluster.start(3, { args: ['--nats', nats.url, '--encryption-provider-config', keyFile, '--snapshot-entries', '20'] });
  t.teardown(() => cluster.stop());
  const kubectl = (...args: string[]) => runKubectl(cluster.kubeconfig, cache, args);
  const stopServers = () => Promise.all(cluster.members.map((m) => cluster.kill(m.id, 'SIGTERM')));
  const startServers = async () => {
    for (const m of cluster.members) cluster.startMember(m.id);
    await cluster.waitReady();
  };
  const getData = async (name: string) => {
    const r = await kubectl('get', 'secret', name, '-o', 'jsonpath={.data.password}');
    return r.code === 0 ? Buffer.from(r.out, 'base64').toString() : `ERROR ${r.err}`;
  };

  // ---------------------------------------------------------------- plant and read back
  const created = await kubectl('create', 'secret', 'generic', 'db', `--from-literal=password=${VALUE}`);
  t.equal(created.code, 0, `kubectl create secret: ${created.err}`);
  const post = async (path: string, obj: object) => {
    const r = await request(`${cluster.urls[0]}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(obj) });
    const text = await r.body.text();
    if (r.statusCode !== 201) throw new Error(`POST ${path}: ${r.statusCode} ${text}`);
  };
  const others: Record<string, string> = {};
  for (const name of ['s1', 's2', 'victim']) {
    others[name] = `other-${randomBytes(6).toString('hex')}`;
    await post('/api/v1/namespaces/default/secrets', { apiVersion: 'v1', kind: 'Secret', metadata: { name }, stringData: { password: others[name] } });
  }
  // Enough writes for snapshots on every member.
  for (let i = 0; i < 30; i++) await post('/api/v1/namespaces/default/configmaps', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `cm${i}` }, data: { k: String(i) } });
  t.equal(await getData('db'), VALUE, 'kubectl get secret returns the plaintext value');
  const list = await kubectl('get', 'secrets', '-o', 'json');
  t.match(list.out, Buffer.from(VALUE).toString('base64'), 'LIST returns the plaintext value');
  const watch = await request(`${cluster.urls[1]}/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1`);
  t.match(await watch.body.text(), Buffer.from(VALUE).toString('base64'), 'WATCH returns the plaintext value (from a follower too)');
  for (const m of cluster.members) {
    const r = await request(`${m.url}/api/v1/namespaces/default/secrets/db?resourceVersion=0`);
    t.match(await r.body.text(), Buffer.from(VALUE).toString('base64'), `GET from ${m.id} returns the plaintext value`);
  }

  // ---------------------------------------------------------------- the stream: metadata only
  const nc = await connect({ servers: nats.urls });
  try {
    const jsm = await nc.jetstreamManager();
    let read = 0;
    const leaked: number[] = [];
    const secretEvents = await waitFor('the Secrets\' events on the stream', async () => {
      const info = await jsm.streams.info('EVENTS');
      const found: ReturnType<typeof decodeEvent>[] = [];
      read = 0;
      for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage('EVENTS', { seq });
        read++;
        if (leaks(m.data)) leaked.push(seq);
        const e = decodeEvent(m.data);
        if (e.resource === 'secrets') found.push(e);
      }
      return found.length >= 4 ? found : undefined;
    }, 20_000, 500);
    t.same(leaked, [], `no message on the stream carries the value (${read} read)`);
    for (const e of secretEvents) {
      const obj = JSON.parse(e.object) as Record<string, unknown>;
      t.ok(obj.metadata && obj.data === undefined && obj.stringData === undefined, `the event for secret ${e.name} carries metadata only`);
    }
  } finally {
    await nc.close();
  }

  // ---------------------------------------------------------------- a malformed key file is refused at start
  const bad: [string, string, RegExp][] = [
    ['not yaml', 'kind: [', /not valid YAML/],
    ['short key', encryptionConfigYaml([{ name: 'k', secret: Buffer.alloc(7).toString('base64') }]), /16, 24 or 32 bytes, got 7/],
    ['unknown provider', 'apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aescbc: {keys: []}\n', /"aescbc" is not supported/],
    ['wrong kind', 'apiVersion: v1\nkind: ConfigMap\n', /kind must be EncryptionConfiguration/],
    ['duplicate key name', encryptionConfigYaml([key1, { ...key2, name: 'key1' }]), /key name "key1" is used more than once/],
    ['other resource', encryptionConfigYaml([key1]).replace('- secrets', '- configmaps'), /only "secrets" can be encrypted here/],
  ];
  // Each is refused by the parser the server runs at start; two of them through a real server start.
  for (const [what, text, expected] of bad) t.throws(() => SecretSealer.parse(text), expected, `${what}: refused`);
  for (const [what, text, expected] of bad.slice(1, 2)) {
    const f = join(work, `bad-${what.replace(/ /g, '-')}.yaml`);
    writeFileSync(f, text, { mode: 0o600 });
    const log = join(work, `bad-${what.replace(/ /g, '-')}.log`);
    const p = startFlotilla(['server', '--id', 'x1', '--peers', 'x1=127.0.0.1:1', '--api', '127.0.0.1:1', '--data', join(work, 'bad-data'), '--encryption-provider-config', f], { logFile: log });
    const code = await p.exited;
    const out = readFileSync(log, 'utf8');
    t.not(code, 0, `${what}: the server refuses to start`);
    t.match(out, expected, `${what}: the reason is given`);
    t.match(out, f, `${what}: the file is named`);
  }

  // ---------------------------------------------------------------- rotation
  writeFileSync(keyFile, encryptionConfigYaml([key2, key1]), { mode: 0o600 });
  await stopServers();
  await startServers();
  t.equal(await getData('db'), VALUE, 'after adding key2 first, a Secret sealed under key1 still reads');
  const rotateLog = join(work, 'rotate.log');
  const p = startFlotilla(['secrets', 'rotate'], { logFile: rotateLog, env: { FLOTILLA_SERVER: cluster.urls.join(',') } });
  const r1 = { code: await p.exited, out: readFileSync(rotateLog, 'utf8') };
  t.equal(r1.code, 0, `flotilla secrets rotate: ${r1.out}`);
  t.match(r1.out, /^4 Secrets re-encrypted under the current write key \(4 rewritten, 0 already under it\)/m, 'every Secret was rewritten');
  // Again, in-process (the same command): nothing left to do.
  let out2 = '';
  await rotateMain(['rotate', '--server', cluster.urls.join(',')], { out: (x) => void (out2 += x), err: (x) => void (out2 += x), stdin: process.stdin });
  t.match(out2, /\(0 rewritten, 4 already under it\)/, 'a second rotation changes nothing');

  // ---------------------------------------------------------------- everything at rest, read back
  await stopServers();
  await nats.stop();
  let victimSealed: { index: number; sealed: string } = { index: -1, sealed: '' };
  let snapshotsSeen = 0;
  let commandsSeen = 0;
  for (const m of cluster.members) {
    const db = new Level<Uint8Array, Uint8Array>(m.dataDir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    try {
      let values = 0;
      const leaked: string[] = [];
      for await (const [k, v] of db.iterator()) {
        values++;
        if (leaks(k) || leaks(v)) leaked.push(Buffer.from(k).toString('hex'));
        const index = entryIndexOf(k);
        if (index < 0) continue;
        // A log entry: record → entry → proposal → API command.
        const rec = openRecord(v);
        if ('error' in rec) throw new Error(rec.error);
        const entry = decodeEntry(rec.payload);
        if (entry.type !== EntryType.Normal || !entry.data.length) continue;
        let cmd;
        try {
          cmd = decodeCommand(decodeProposal(entry.data).payload);
        } catch {
          continue; // a member-directory entry
        }
        if (cmd.res !== '/secrets' || cmd.op === 'delete' || cmd.op === 'mark') continue;
        commandsSeen++;
        const obj = JSON.parse(cmd.obj) as { data?: unknown };
        if (!(typeof obj.data === 'string' && obj.data.startsWith(SEALED))) t.fail(`${m.id}: log entry ${index} (secret ${cmd.name}) holds unsealed data`);
        if (cmd.name === 'victim' && index > victimSealed.index) victimSealed = { index, sealed: obj.data as string };
      }
      t.ok(values > 0, `${m.id}: LevelDB read back (${values} values)`);
      t.same(leaked, [], `${m.id}: no LevelDB key or value holds the value`);
      // The snapshot, decoded as the server restores it.
      const metaRec = await db.get(SNAP_META_KEY);
      if (metaRec) {
        const meta = unpack((openRecord(metaRec) as { payload: Uint8Array }).payload) as { index: number; chunks: number };
        const chunks: Uint8Array[] = [];
        for (let n = 0; n < meta.chunks; n++) chunks.push((openRecord((await db.get(snapChunkKey(n)))!) as { payload: Uint8Array }).payload);
        const store = new ObjectStore();
        new MemberDirectory(store).restore(decodeSnapshotEnvelope(Buffer.concat(chunks)).app, meta.index);
        const secrets = store.list('/secrets', undefined);
        if (secrets.length) snapshotsSeen++;
        for (const { key, obj } of secrets) {
          const data = (JSON.parse(obj.json) as { data?: unknown }).data;
          t.ok(typeof data === 'string' && data.startsWith(SEALED), `${m.id}: snapshot ${meta.index} holds secret ${key} sealed`);
          if (key === 'default/victim' && meta.index > victimSealed.index) victimSealed = { index: meta.index, sealed: data as string };
        }
      }
    } finally {
      await db.close();
    }
  }
  t.ok(commandsSeen > 0, `Secret writes were found and decoded in the Raft logs (${commandsSeen})`);
  t.ok(snapshotsSeen > 0, `Secrets were found and decoded in snapshots (${snapshotsSeen} members)`);
  t.match(victimSealed.sealed, `${SEALED}key2:`, 'the latest version of a Secret is sealed under the new key');
  // Every file: data directories, the NATS store, every log.
  const files = [...walk(cluster.dir), ...walk(nats.dir), ...walk(work)];
  t.ok(files.some((f) => f.endsWith('.log') && f.includes(cluster.dir)), 'the servers\' logs are among the files read');
  t.same(files.filter((f) => leaks(readFileSync(f))), [], `none of the ${files.length} files (data, NATS store, logs) holds the value`);

  // ---------------------------------------------------------------- tampering
  const target = Buffer.from(victimSealed.sealed);
  const at = target.length - 20; // inside the base64 ciphertext
  const tampered = Buffer.from(target);
  tampered[at] = tampered[at] === 0x41 ? 0x42 : 0x41; // another base64 letter: same length, other bytes
  let changed = 0;
  for (const m of cluster.members) {
    const db = new Level<Uint8Array, Uint8Array>(m.dataDir, { keyEncoding: 'view', valueEncoding: 'view' });
    await db.open();
    try {
      for await (const [k, v] of db.iterator()) {
        const rec = openRecord(v);
        if ('error' in rec) continue;
        const payload = Buffer.from(rec.payload);
        let i = payload.indexOf(target);
        if (i < 0) continue;
        while (i >= 0) {
          tampered.copy(payload, i);
          i = payload.indexOf(target, i + 1);
        }
        await db.put(k, sealRecord(payload), { sync: true });
        changed++;
      }
    } finally {
      await db.close();
    }
  }
  t.ok(changed >= 3, `the victim's ciphertext was altered on every member (${changed} records)`);

  // ---------------------------------------------------------------- the old key removed; the tampered Secret
  // The old key goes (and identity with it: nothing may be stored in plaintext).
  writeFileSync(keyFile, encryptionConfigYaml([key2]).replace(/\s*- identity: \{\}\n/, '\n'), { mode: 0o600 });
  t.notMatch(readFileSync(keyFile, 'utf8'), /identity|key1/, 'the key file now holds key2 only');
  nats.startMember('n1');
  await nats.waitUp();
  await startServers();
  t.equal(await getData('db'), VALUE, 'with key1 removed, the rotated Secret reads');
  for (const name of ['s1', 's2']) t.equal(await getData(name), others[name], `with key1 removed, ${name} reads`);
  for (const m of cluster.members) {
    const r = await request(`${m.url}/api/v1/namespaces/default/secrets/victim?resourceVersion=0`);
    const body = await r.body.json() as { reason?: string; message?: string };
    t.equal(r.statusCode, 500, `${m.id}: a tampered Secret is an error`);
    t.match(body.message, /unable to decrypt Secret "default\/victim".*failed authentication/, `${m.id}: the error names the Secret and the reason`);
  }
  const kget = await kubectl('get', 'secret', 'victim');
  t.not(kget.code, 0);
  t.match(kget.err, /InternalError.*unable to decrypt Secret "default\/victim"/, 'kubectl shows the error');
  for (const m of cluster.members) {
    const r = await request(`${m.url}/healthz`);
    await r.body.dump();
    t.equal(r.statusCode, 200, `${m.id} is still serving`);
  }
  const del = await kubectl('delete', 'secret', 'victim');
  t.equal(del.code, 0, `the tampered Secret can be deleted: ${del.err}`);
  const after = await kubectl('get', 'secrets', '-o', 'name');
  t.same(after.out.trim().split('\n').sort(), ['secret/db', 'secret/s1', 'secret/s2'], 'and the Secrets list again');
  t.equal(cluster.alive().length, 3, 'no server crashed');
});


function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push(p);
  }
  return out;
}
