// The CLI's pieces that need no server: argument conventions, manifest
// reading (multi-document YAML, JSON, List, directories, errors with lines)
// and kubectl-style printing.
import t from 'tap';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import YAML from 'yaml';
import { kindAndNames, parseCommand, parseDuration } from '../bin/commands/args.ts';
import { ManifestError, parseManifests, readManifests } from '../bin/commands/manifests.ts';
import {
  StreamingTable, formatCell, formatObjects, formatTable, parseOutputFormat, tableView, toJson, toYaml,
} from '../bin/commands/printers.ts';

t.test('args: kubectl conventions on top of parseArgs', async (t) => {
  const opts = { wait: { type: 'boolean', default: true }, namespace: { type: 'string', short: 'n' } } as const;
  t.equal(parseCommand('delete', ['--wait=false'], opts).values.wait, false);
  t.equal(parseCommand('delete', ['--wait=true'], opts).values.wait, true);
  t.equal(parseCommand('delete', ['--no-wait'], opts).values.wait, false);
  t.equal(parseCommand('delete', ['-n', 'kube-system'], opts).values.namespace, 'kube-system');
  t.throws(() => parseCommand('get', ['--bogus'], opts), { name: 'UsageError', message: 'unknown flag: --bogus', command: 'get' });
  t.same(kindAndNames(['deploy', 'a', 'b'], 'get'), [{ kind: 'deploy', names: ['a', 'b'] }]);
  t.same(kindAndNames(['deploy,svc'], 'get'), [{ kind: 'deploy', names: [] }, { kind: 'svc', names: [] }]);
  t.same(kindAndNames(['deploy/a', 'svc/b', 'deploy/c'], 'get'), [{ kind: 'deploy', names: ['a', 'c'] }, { kind: 'svc', names: ['b'] }]);
  t.throws(() => kindAndNames(['deploy', 'svc/b'], 'get'), { name: 'UsageError' });
  t.throws(() => kindAndNames([], 'get'), /must specify the type of resource/);
  t.equal(parseDuration('90s', '--timeout'), 90_000);
  t.equal(parseDuration('2m', '--timeout'), 120_000);
  t.equal(parseDuration('250ms', '--timeout'), 250);
  t.equal(parseDuration('5', '--timeout'), 5000);
  t.throws(() => parseDuration('soon', '--timeout'), { name: 'UsageError' });
});

const MULTI = `# a comment before the first document
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
---
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
`;

t.test('manifests: multi-document YAML, empty documents, Lists, JSON', async (t) => {
  const m = parseManifests(MULTI, 'app.yaml');
  t.same(m.map((x) => `${x.obj.kind}/${x.obj.metadata?.name}@${x.line}`), ['Deployment/web@2', 'Service/web@10']);
  t.equal(m[1].obj.metadata?.namespace, 'prod');
  const list = parseManifests(JSON.stringify({ apiVersion: 'v1', kind: 'List', items: [
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'a' } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'b' } },
  ] }, null, 2), 'list.json');
  t.same(list.map((x) => x.obj.kind), ['ConfigMap', 'Secret']);
  t.same(parseManifests('', 'empty.yaml'), []);
});

t.test('manifests: errors name the file and the line', async (t) => {
  t.throws(() => parseManifests('apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   labels: {}\n', 'bad.yaml'), { name: 'ManifestError' });
  const err = (() => {
    try {
      parseManifests('apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n spec: [\n', 'bad.yaml');
    } catch (e) {
      return e as Error;
    }
  })();
  t.ok(err instanceof ManifestError);
  t.match(err?.message, /^error parsing bad\.yaml: line \d+, column \d+: /);
  t.throws(() => parseManifests('a: 1\na: 2\n', 'dup.yaml'), /dup\.yaml: line 2/);
  t.throws(() => parseManifests('{"apiVersion": "v1", "kind": "Pod",\n "metadata": {"name": "x"}\n', 'x.json'), /x\.json: line \d/);
  t.throws(() => parseManifests('kind: Pod\nmetadata: {name: x}\n', 'f.yaml'), /error validating f\.yaml: line 1: \[apiVersion not set\]/);
  t.throws(() => parseManifests('apiVersion: v1\nkind: Pod\nmetadata: {generateName: x-}\n', 'f.yaml'), /generateName cannot be used/);
  t.throws(() => parseManifests('- a\n- b\n', 'seq.yaml'), /must be a mapping/);
  t.throws(() => parseManifests(`${MULTI}---\napiVersion: v1\nkind: ConfigMap\n`, 'm.yaml'), /m\.yaml: line 14: \[metadata\.name not set\]/);
});

t.test('manifests: directories (sorted, *.yaml|*.yml|*.json, -R) and stdin', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'flotilla-manifests-'));
  const doc = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n`;
  writeFileSync(join(dir, 'b.yaml'), doc('b'));
  writeFileSync(join(dir, 'a.yml'), doc('a'));
  writeFileSync(join(dir, 'c.json'), JSON.stringify(YAML.parse(doc('c'))));
  writeFileSync(join(dir, 'notes.txt'), 'not a manifest');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'd.yaml'), doc('d'));
  const names = async (paths: string[], recursive = false) =>
    (await readManifests(paths, { recursive })).map((m) => m.obj.metadata?.name);
  t.same(await names([dir]), ['a', 'b', 'c']);
  t.same(await names([dir], true), ['a', 'b', 'c', 'd']);
  t.same(await names([join(dir, 'sub', 'd.yaml'), join(dir, 'a.yml')]), ['d', 'a']);
  const stdin = Readable.from([Buffer.from(doc('from-stdin'))]);
  t.same((await readManifests(['-'], { stdin })).map((m) => [m.obj.metadata?.name, m.source]), [['from-stdin', 'STDIN']]);
  await t.rejects(readManifests([join(dir, 'missing.yaml')]), /the path ".*missing\.yaml" does not exist/);
  await t.rejects(readManifests([join(dir, 'sub', 'empty')].map(() => mkdtempSync(join(tmpdir(), 'flotilla-empty-')))), /no objects passed to apply/);
});

t.test('printers: aligned tables like kubectl (3 spaces, min width 6, last column unpadded)', async (t) => {
  t.equal(
    formatTable(['NAME', 'READY', 'AGE'], [['web-7d4b9c', '1/1', '5m'], ['db', '0/1', '10d']]),
    'NAME         READY   AGE\nweb-7d4b9c   1/1     5m\ndb           0/1     10d\n',
  );
  t.equal(formatTable(['ID', 'X'], [['s1', 'y']]), 'ID    X\ns1    y\n', 'narrow columns are 6 wide');
  t.equal(formatTable(['A', 'B'], [['x', '']]), 'A     B\nx\n', 'no trailing spaces');
  t.equal(formatCell(null), '<none>');
  t.equal(formatCell(3), '3');
  t.equal(formatCell(false), 'false');

  const table = {
    columnDefinitions: [
      { name: 'Name', type: 'string', format: 'name', priority: 0 },
      { name: 'Ready', type: 'string', priority: 0 },
      { name: 'Images', type: 'string', priority: 1 },
      { name: 'Age', type: 'string', format: 'date', priority: 0 },
    ],
    rows: [
      { cells: ['web', '2/2', 'nginx:1', '3m'], object: { metadata: { name: 'web', namespace: 'prod' } } },
      { cells: ['api', '1/1', 'api:2', '1h'], object: { metadata: { name: 'api', namespace: 'default' } } },
    ],
  };
  t.same(tableView(table), { header: ['NAME', 'READY', 'AGE'], rows: [['web', '2/2', '3m'], ['api', '1/1', '1h']] });
  t.same(tableView(table, { wide: true }).header, ['NAME', 'READY', 'IMAGES', 'AGE']);
  t.same(tableView(table, { withNamespace: true }).rows[0], ['prod', 'web', '2/2', '3m']);
  t.same(tableView(table, { namePrefix: 'deployment.apps' }).rows[1][0], 'deployment.apps/api');

  const st = new StreamingTable(['NAME', 'STATUS'], [['a', 'Running']]);
  t.equal(st.start([['a', 'Running']]), 'NAME   STATUS\na      Running\n');
  t.equal(st.row(['b', 'Pending']), 'b      Pending\n', 'later rows keep the first alignment');
  t.equal(st.row(['much-longer-name', 'x']), 'much-longer-name   x\n');
});

t.test('printers: json/yaml like kubectl (sorted keys, List for many, kind/name)', async (t) => {
  const obj = { metadata: { name: 'web', labels: { b: '1', a: 'true' } }, kind: 'Deployment', apiVersion: 'apps/v1', spec: { ports: [{ port: 80 }] } };
  t.equal(toJson(obj).split('\n')[1], '    "apiVersion": "apps/v1",', 'keys sorted, 4-space indent');
  const y = toYaml(obj);
  t.match(y, /^apiVersion: apps\/v1\nkind: Deployment\nmetadata:\n  labels:\n    a: "true"\n    b: "1"\n/);
  t.match(y, /spec:\n  ports:\n  - port: 80\n/, 'sequences are not indented under their key');
  t.same(YAML.parse(formatObjects([obj, obj], 'yaml', false, () => '')).kind, 'List');
  t.same(JSON.parse(formatObjects([obj], 'json', true, () => '')).kind, 'Deployment');
  t.equal(formatObjects([obj], 'name', false, (o) => `deployment.apps/${o.metadata?.name}`), 'deployment.apps/web\n');
  t.equal(parseOutputFormat(undefined, ['table', 'json']), 'table');
  t.equal(parseOutputFormat('wide', ['table', 'wide']), 'wide');
  t.throws(() => parseOutputFormat('xml', ['table', 'json', 'yaml']), /allowed formats are: json,yaml/);
});
