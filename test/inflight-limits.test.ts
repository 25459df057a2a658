// Request limits under a flood: a server with small --max-requests-inflight
// and --max-mutating-requests-inflight answers the excess 429 with
// Retry-After: 1 and Kubernetes' message, open watches hold no slot, every
// acknowledged write is stored (and no refused one), expensive LISTs are
// paced per user, and oversized headers and bodies are refused.
import net from 'node:net';
import t from 'tap';
import { Pool, request } from 'undici';
import { FlotillaCluster } from '../harness/flotilla-cluster.ts';
import { sleep } from '../harness/procs.ts';

const TOO_MANY = 'Too many requests, please try again later.';

t.test('inflight limits', async (t) => {
  const cluster = await FlotillaCluster.start(1, {
    args: [
      '--max-requests-inflight', '4', '--max-mutating-requests-inflight', '2',
      '--list-rate-limit-qps', '0.001', '--list-rate-limit-burst', '3', '--list-rate-limit-min-objects', '10',
    ],
  });
  t.teardown(() => cluster.stop());
  const url = cluster.urls[0];
  const pool = new Pool(url, { connections: 64, pipelining: 1 });
  t.teardown(() => pool.close());
  const metric = async (name: string, labels: string) => {
    const text = await (await request(`${url}/metrics`)).body.text();
    const m = new RegExp(`^${name}\\{${labels}\\} (\\d+)`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };

  // More watches than read-only slots: if they held slots, every read below would be refused.
  const watches: { close(): void }[] = [];
  for (let i = 0; i < 10; i++) {
    const ac = new AbortController();
    const r = await request(`${url}/api/v1/namespaces/default/configmaps?watch=true`, { signal: ac.signal });
    t.equal(r.statusCode, 200, `watch ${i} is served`);
    r.body.on('error', () => {});
    watches.push({ close: () => ac.abort() });
  }
  t.teardown(() => watches.forEach((w) => w.close()));
  const get = await request(`${url}/api/v1/namespaces/default`);
  t.equal(get.statusCode, 200, 'a read is served with 10 watches open (watches hold no slot)');
  await get.body.dump();

  await t.test('a write flood gets 429 with Retry-After, and loses no acknowledged write', async (t) => {
    const acked = new Set<string>();
    let refused = 0;
    const other: string[] = [];
    let retryAfter = true;
    let message = true;
    // 200 writes at once against 2 slots; a refused one is sent again (as
    // clients do on 429) until it is acknowledged. Had a refused attempt been
    // stored, its retry would meet 409 AlreadyExists.
    await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const name = `flood-${i}`;
      for (let attempt = 0; attempt < 1000 && !acked.has(name); attempt++) {
        const r = await pool.request({
          path: '/api/v1/namespaces/default/configmaps', method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data: { i: String(i) } }),
        });
        const text = await r.body.text();
        if (r.statusCode === 201) acked.add(name);
        else if (r.statusCode === 429) {
          refused++;
          if (r.headers['retry-after'] !== '1') retryAfter = false;
          const st = JSON.parse(text) as { message?: string; reason?: string; code?: number };
          if (st.message !== TOO_MANY || st.reason !== 'TooManyRequests' || st.code !== 429) message = false;
          await sleep(10 + (i % 20)); // shorter than Retry-After asks: the test wants the flood to go on
        } else {
          other.push(`${name}: ${r.statusCode} ${text}`);
          return;
        }
      }
    }));
    t.ok(refused > 0, `writes were refused with 429 (${refused} refusals)`);
    t.equal(acked.size, 200, 'every write was acknowledged in the end');
    t.ok(retryAfter, 'every 429 carries Retry-After: 1');
    t.ok(message, `every 429 says "${TOO_MANY}" (a TooManyRequests Status)`);
    t.same(other, [], 'no other answers (no refused attempt was stored: its retry would be 409)');
    t.equal(await metric('apiserver_flowcontrol_rejected_requests_total', 'request_kind="mutating",reason="max-inflight"'), refused, 'each refusal is counted');

    // Count what is stored, page by page (a paginated LIST is not an expensive one).
    const stored = new Map<string, string>();
    let cont = '';
    do {
      const r = await request(`${url}/api/v1/namespaces/default/configmaps?limit=10${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
      if (r.statusCode !== 200) throw new Error(`a page of the LIST was answered ${r.statusCode}: ${await r.body.text()}`);
      const l = (await r.body.json()) as { items: { metadata: { name: string }; data: { i: string } }[]; metadata: { continue?: string } };
      for (const o of l.items) stored.set(o.metadata.name, o.data.i);
      cont = l.metadata.continue ?? '';
    } while (cont);
    const lost = [...acked].filter((n) => !stored.has(n));
    t.same(lost, [], `every acknowledged write is stored (${acked.size})`);
    t.equal([...stored.keys()].filter((n) => n.startsWith('flood-')).length, acked.size, 'exactly the acknowledged writes are stored');
    t.ok([...acked].every((n) => stored.get(n) === n.split('-')[1]), 'with their data');
  });

  await t.test('a read flood gets 429 while watches stay open', async (t) => {
    let refused = 0;
    let ok = 0;
    for (let round = 0; round < 5 && !refused; round++) {
      await Promise.all(Array.from({ length: 200 }, async () => {
        const r = await pool.request({ path: '/api/v1/namespaces/default', method: 'GET' });
        await r.body.dump();
        if (r.statusCode === 429 && r.headers['retry-after'] === '1') refused++;
        else if (r.statusCode === 200) ok++;
      }));
    }
    t.ok(refused > 0, `reads were refused with 429 and Retry-After: 1 (${refused} refused, ${ok} served)`);
    t.equal(await metric('apiserver_flowcontrol_rejected_requests_total', 'request_kind="readOnly",reason="max-inflight"'), refused, 'counted');
    t.equal(await metric('apiserver_current_inflight_requests', 'request_kind="readOnly"'), 0, 'every read-only slot is released (the /metrics scrape holds none)');
    t.equal(await metric('apiserver_current_inflight_requests', 'request_kind="mutating"'), 0, 'every mutating slot is released');
  });

  await t.test('expensive LISTs are paced per user', async (t) => {
    const list = async (q = '') => {
      const r = await request(`${url}/api/v1/namespaces/default/configmaps${q}`);
      await r.body.dump();
      return { code: r.statusCode, retryAfter: r.headers['retry-after'] };
    };
    for (let i = 0; i < 3; i++) t.equal((await list()).code, 200, `unpaginated LIST ${i + 1} of 3 (the burst) is served`);
    const r = await list();
    t.equal(r.code, 429, 'the next is refused');
    t.ok(Number(r.retryAfter) >= 1, `with Retry-After (${r.retryAfter})`);
    t.equal((await list('?limit=10')).code, 200, 'a paginated LIST is not paced');
    t.equal((await list('?fieldSelector=metadata.name=flood-1&limit=5')).code, 200, 'nor a small page');
    t.equal(await metric('apiserver_flowcontrol_rejected_requests_total', 'request_kind="list",reason="rate-limit"'), 1, 'counted');
  });

  await t.test('oversized headers and bodies are refused', async (t) => {
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(Number(new URL(url).port), '127.0.0.1');
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('end', () => resolve(out));
      s.on('close', () => resolve(out));
      s.on('error', reject);
      s.write(`GET /version HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`);
    });
    t.match(raw, /^HTTP\/1\.1 431 /, 'a 20 KiB header is answered 431');
    t.equal(await metric('apiserver_listener_refused_total', 'reason="header-too-large"'), 1, 'and counted');
    const r = await request(`${url}/api/v1/namespaces/default/configmaps`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'huge' }, data: { x: 'x'.repeat(4 * 1024 * 1024) } }),
    });
    const text = await r.body.text();
    t.equal(r.statusCode, 413, 'a 4 MiB body is answered 413');
    t.match(text, /Request entity too large: limit is 3145728/);
  });
});
