import t from 'tap';
import type { KubeObject, ObjectSchema, Schema } from '../api/schema/types.ts';
import { PatchError } from '../apiserver/patch/errors.ts';
import { applyMergePatch } from '../apiserver/patch/json-merge.ts';
import { MAX_JSON_PATCH_OPERATIONS, applyJsonPatch, jsonEqual, parseJsonPointer } from '../apiserver/patch/json-patch.ts';
import { applyStrategicMergePatch, createTwoWayMergePatch } from '../apiserver/patch/strategic-merge.ts';
import {
  BEFORE_FIRST_APPLY_MANAGER, FieldSet, LAST_APPLIED_ANNOTATION, conflictStatus, formatConflictMessage, formatConflicts,
  pathToString, serverSideApply, toFieldSet, updateManagedFieldsForUpdate, type ApplyOptions, type Conflict,
} from '../apiserver/patch/apply.ts';

// ---------------------------------------------------------------------------
// a small Deployment-like schema

const str: Schema = { type: 'string' };
const int: Schema = { type: 'integer' };
const stringMap: ObjectSchema = { type: 'object', additionalProperties: str };

const port: ObjectSchema = {
  type: 'object',
  properties: { containerPort: int, protocol: { type: 'string', default: 'TCP' }, name: str },
};
const container: ObjectSchema = {
  type: 'object',
  properties: {
    name: str,
    image: str,
    command: { type: 'array', items: str },
    args: { type: 'array', items: str },
    ports: { type: 'array', items: port, listType: 'map', listMapKeys: ['containerPort', 'protocol'], mergeKey: 'containerPort', patchStrategy: 'merge' },
    env: { type: 'array', items: { type: 'object', properties: { name: str, value: str } }, listType: 'map', listMapKeys: ['name'], mergeKey: 'name', patchStrategy: 'merge' },
    resources: { type: 'object', properties: { limits: stringMap, requests: stringMap } },
  },
};
const volume: ObjectSchema = {
  type: 'object',
  properties: {
    name: str,
    emptyDir: { type: 'object', properties: { medium: str } },
    hostPath: { type: 'object', properties: { path: str } },
    configMap: { type: 'object', properties: { name: str } },
  },
};
const schema: ObjectSchema = {
  type: 'object',
  properties: {
    apiVersion: str,
    kind: str,
    metadata: {
      type: 'object',
      properties: {
        name: str, namespace: str, uid: str, resourceVersion: str, generation: int, creationTimestamp: str,
        labels: stringMap,
        annotations: stringMap,
        finalizers: { type: 'array', items: str, listType: 'set', patchStrategy: 'merge' },
        managedFields: { type: 'array', items: { type: 'any' } },
      },
    },
    spec: {
      type: 'object',
      properties: {
        replicas: int,
        paused: { type: 'boolean' },
        selector: { type: 'object', mapType: 'atomic', properties: { matchLabels: stringMap } },
        strategy: {
          type: 'object',
          properties: { type: str, rollingUpdate: { type: 'object', properties: { maxSurge: { type: 'int-or-string' }, maxUnavailable: { type: 'int-or-string' } } } },
        },
        template: {
          type: 'object',
          properties: {
            metadata: { type: 'object', properties: { labels: stringMap, annotations: stringMap } },
            spec: {
              type: 'object',
              properties: {
                containers: { type: 'array', items: container, listType: 'map', listMapKeys: ['name'], mergeKey: 'name', patchStrategy: 'merge' },
                volumes: { type: 'array', items: volume, listType: 'map', listMapKeys: ['name'], mergeKey: 'name', patchStrategy: 'merge,retainKeys' },
                tolerations: { type: 'array', items: { type: 'object', properties: { key: str, operator: str, effect: str } } },
                nodeSelector: stringMap,
                extra: { type: 'any' },
              },
            },
          },
        },
      },
    },
    status: { type: 'object', properties: { replicas: int, readyReplicas: int } },
  },
};

function deployment(): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default', labels: { app: 'web', tier: 'front' }, finalizers: ['a', 'b'] },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'web' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [
            { name: 'nginx', image: 'nginx:1.25', ports: [{ containerPort: 80 }], env: [{ name: 'A', value: '1' }] },
            { name: 'log-tailer', image: 'busybox', args: ['tail', '-f'] },
          ],
          tolerations: [{ key: 'k1', operator: 'Exists' }],
        },
      },
    },
  };
}

type Obj = Record<string, any>;

function thrown(fn: () => unknown): PatchError {
  try {
    fn();
  } catch (e) {
    if (e instanceof PatchError) return e;
    throw e;
  }
  throw new Error('expected a PatchError');
}

const smp = (orig: unknown, patch: unknown): Obj => applyStrategicMergePatch(orig, patch, schema) as Obj;
const names = (o: Obj): string[] => o.spec.template.spec.containers.map((c: Obj) => c.name);

// ---------------------------------------------------------------------------
// JSON merge patch

t.test('JSON merge patch: RFC 7386 appendix A', async (t) => {
  const cases: [unknown, unknown, unknown][] = [
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ];
  for (const [target, patch, want] of cases) {
    t.same(applyMergePatch(target, patch), want, `${JSON.stringify(target)} + ${JSON.stringify(patch)}`);
  }
});

t.test('JSON merge patch never mutates its inputs and shares no structure', async (t) => {
  const target = { spec: { template: { labels: { a: '1' } } }, list: [{ x: 1 }] };
  const patch = { spec: { template: { labels: { b: '2' } } }, list: [{ y: 2 }] };
  const before = structuredClone(target);
  const patchBefore = structuredClone(patch);
  const out = applyMergePatch(target, patch) as Obj;
  t.same(target, before);
  t.same(patch, patchBefore);
  t.same(out, { spec: { template: { labels: { a: '1', b: '2' } } }, list: [{ y: 2 }] });
  out.list[0].y = 3;
  t.equal(patch.list[0].y, 2);
});

t.test('JSON merge patch: a "__proto__" key is plain data', async (t) => {
  const out = applyMergePatch({}, JSON.parse('{"__proto__":{"polluted":true}}')) as Obj;
  t.equal(({} as Obj).polluted, undefined);
  t.ok(Object.prototype.hasOwnProperty.call(out, '__proto__'));
});

// ---------------------------------------------------------------------------
// JSON patch

t.test('JSON patch: add, remove, replace, move, copy, test', async (t) => {
  const doc = { metadata: { labels: { a: '1' } }, spec: { list: [1, 2, 3] } };
  const out = applyJsonPatch(doc, [
    { op: 'add', path: '/metadata/labels/b', value: '2' },
    { op: 'add', path: '/spec/list/1', value: 9 },
    { op: 'add', path: '/spec/list/-', value: 4 },
    { op: 'remove', path: '/spec/list/0' },
    { op: 'replace', path: '/metadata/labels/a', value: 'x' },
    { op: 'copy', from: '/metadata/labels', path: '/spec/labels' },
    { op: 'move', from: '/metadata/labels/b', path: '/spec/b' },
    { op: 'test', path: '/spec/list', value: [9, 2, 3, 4] },
    { op: 'test', path: '/spec/labels', value: { b: '2', a: 'x' } },
  ]);
  t.same(out, { metadata: { labels: { a: 'x' } }, spec: { list: [9, 2, 3, 4], labels: { a: 'x', b: '2' }, b: '2' } });
  t.same(doc, { metadata: { labels: { a: '1' } }, spec: { list: [1, 2, 3] } }, 'input untouched');
});

t.test('JSON patch: pointer escaping ~0 ~1', async (t) => {
  t.same(parseJsonPointer('/a~1b/c~0d/~01'), ['a/b', 'c~d', '~1']);
  t.same(parseJsonPointer(''), []);
  t.same(parseJsonPointer('/'), ['']);
  const out = applyJsonPatch({ metadata: { annotations: {} } }, [
    { op: 'add', path: '/metadata/annotations/example.com~1owner', value: 'me' },
    { op: 'add', path: '/metadata/annotations/tilde~0key', value: 't' },
  ]) as Obj;
  t.same(out.metadata.annotations, { 'example.com/owner': 'me', 'tilde~key': 't' });
  t.match(thrown(() => parseJsonPointer('/a~2')).message, /must be followed by "0" or "1"/);
  t.match(thrown(() => applyJsonPatch({}, [{ op: 'add', path: 'a', value: 1 }])).message, /must be empty or start with "\/"/);
});

t.test('JSON patch: array index bounds', async (t) => {
  const doc = { l: ['a', 'b'] };
  t.same(applyJsonPatch(doc, [{ op: 'add', path: '/l/2', value: 'c' }]), { l: ['a', 'b', 'c'] }, 'index == length appends');
  t.same(applyJsonPatch(doc, [{ op: 'add', path: '/l/0', value: 'z' }]), { l: ['z', 'a', 'b'] });
  t.same(applyJsonPatch(doc, [{ op: 'remove', path: '/l/-1' }]), { l: ['a'] }, 'negative index counts from the end (as Kubernetes)');
  t.same(applyJsonPatch(doc, [{ op: 'replace', path: '/l/1', value: 'B' }]), { l: ['a', 'B'] });
  let e = thrown(() => applyJsonPatch(doc, [{ op: 'add', path: '/l/3', value: 'x' }]));
  t.equal(e.message, 'Unable to access invalid index: 3: invalid index referenced');
  t.equal(e.code, 422);
  e = thrown(() => applyJsonPatch(doc, [{ op: 'remove', path: '/l/2' }]));
  t.equal(e.message, 'Unable to access invalid index: 2: invalid index referenced');
  e = thrown(() => applyJsonPatch(doc, [{ op: 'replace', path: '/l/-', value: 1 }]));
  t.match(e.message, /invalid index/);
  e = thrown(() => applyJsonPatch(doc, [{ op: 'add', path: '/l/x', value: 1 }]));
  t.match(e.message, /invalid index/);
  t.same(applyJsonPatch({ o: {} }, [{ op: 'add', path: '/o/-', value: 1 }]), { o: { '-': 1 } }, '"-" is a plain key in objects');
});

t.test('JSON patch: missing paths and failed tests', async (t) => {
  const doc = { spec: { replicas: 1 } };
  let e = thrown(() => applyJsonPatch(doc, [{ op: 'add', path: '/spec/x/y', value: 1 }]));
  t.equal(e.message, 'add operation does not apply: doc is missing path: "/spec/x/y": missing value');
  t.equal(e.code, 422);
  t.equal(e.reason, 'Invalid');
  e = thrown(() => applyJsonPatch(doc, [{ op: 'remove', path: '/spec/x' }]));
  t.equal(e.message, 'Unable to remove nonexistent key: x: missing value');
  e = thrown(() => applyJsonPatch(doc, [{ op: 'remove', path: '/nope/x' }]));
  t.equal(e.message, 'remove operation does not apply: doc is missing path: "/nope/x": missing value');
  e = thrown(() => applyJsonPatch(doc, [{ op: 'replace', path: '/spec/x', value: 1 }]));
  t.equal(e.message, 'replace operation does not apply: doc is missing key: /spec/x: missing value');
  e = thrown(() => applyJsonPatch(doc, [{ op: 'test', path: '/spec/replicas', value: 2 }]));
  t.equal(e.message, 'testing value /spec/replicas failed: test failed');
  e = thrown(() => applyJsonPatch(doc, [{ op: 'move', from: '/spec/x', path: '/y' }]));
  t.equal(e.message, 'move operation does not apply: doc is missing from path: /spec/x: missing value');
  e = thrown(() => applyJsonPatch(doc, [{ op: 'copy', from: '/spec', path: '/a/b' }]));
  t.equal(e.message, 'copy operation does not apply: doc is missing destination path: "/a/b": missing value');
  e = thrown(() => applyJsonPatch(doc, [{ op: 'move', from: '/spec', path: '/spec/inner' }]));
  t.match(e.message, /cannot move \/spec into its own child/);
  t.same(applyJsonPatch(doc, [{ op: 'test', path: '/spec/absent', value: null }]), doc, 'absent tests equal to null');
  t.same(applyJsonPatch(doc, [{ op: 'move', from: '/spec', path: '/spec' }]), doc, 'move onto itself is a no-op');
});

t.test('JSON patch: failure leaves nothing half-applied', async (t) => {
  const doc = { a: 1 };
  thrown(() => applyJsonPatch(doc, [{ op: 'replace', path: '/a', value: 2 }, { op: 'test', path: '/a', value: 1 }]));
  t.same(doc, { a: 1 });
});

t.test('JSON patch: root pointer', async (t) => {
  t.same(applyJsonPatch({ a: 1 }, [{ op: 'replace', path: '', value: { b: 2 } }]), { b: 2 });
  t.same(applyJsonPatch({ a: 1 }, [{ op: 'test', path: '', value: { a: 1 } }]), { a: 1 });
  t.match(thrown(() => applyJsonPatch({ a: 1 }, [{ op: 'remove', path: '' }])).message, /doc is missing path/);
});

t.test('JSON patch: operation shapes', async (t) => {
  let e = thrown(() => applyJsonPatch({}, { op: 'add' }));
  t.equal(e.code, 400);
  t.equal(e.reason, 'BadRequest');
  t.match(e.message, /cannot unmarshal object into Go value of type jsonpatch.Patch/);
  e = thrown(() => applyJsonPatch({}, ['add']));
  t.equal(e.code, 400);
  e = thrown(() => applyJsonPatch({}, [{ op: 'frobnicate', path: '/a' }]));
  t.equal(e.message, 'Unexpected kind: frobnicate: unknown object type');
  e = thrown(() => applyJsonPatch({}, [{ path: '/a', value: 1 }]));
  t.equal(e.message, 'Unexpected kind: unknown: unknown object type');
  e = thrown(() => applyJsonPatch({}, [{ op: 'add', value: 1 }]));
  t.equal(e.message, 'add operation missing path field: missing value');
  e = thrown(() => applyJsonPatch({}, [{ op: 'add', path: '/a' }]));
  t.equal(e.message, 'add operation missing value field: missing value');
  e = thrown(() => applyJsonPatch({}, [{ op: 'test', path: '/a' }]));
  t.match(e.message, /missing value field/);
  e = thrown(() => applyJsonPatch({}, [{ op: 'move', path: '/a' }]));
  t.equal(e.message, 'move operation missing from field: missing value');
  e = thrown(() => applyJsonPatch({}, [{ op: 'add', path: 7, value: 1 }]));
  t.match(e.message, /cannot unmarshal number/);
  t.same(applyJsonPatch({}, [{ op: 'add', path: '/a', value: null }]), { a: null }, 'a null value is a value');
  e = thrown(() => applyJsonPatch({}, Array.from({ length: MAX_JSON_PATCH_OPERATIONS + 1 }, () => ({ op: 'test', path: '', value: {} }))));
  t.equal(e.code, 413);
  t.equal(e.reason, 'RequestEntityTooLarge');
});

t.test('JSON patch: test compares structurally', async (t) => {
  t.ok(jsonEqual({ a: [1, { b: 2 }], c: 'x' }, { c: 'x', a: [1, { b: 2 }] }));
  t.notOk(jsonEqual({ a: 1 }, { a: 1, b: 2 }));
  t.notOk(jsonEqual([1, 2], [2, 1]));
  t.notOk(jsonEqual(1, '1'));
  t.notOk(jsonEqual(null, {}));
});

// ---------------------------------------------------------------------------
// strategic merge patch

t.test('SMP: adding a container by name (kubectl patch docs: the new one goes first)', async (t) => {
  const live = deployment();
  const out = smp(live, { spec: { template: { spec: { containers: [{ name: 'patch-demo-ctr-2', image: 'redis' }] } } } });
  t.same(names(out), ['patch-demo-ctr-2', 'nginx', 'log-tailer']);
  t.same(out.spec.template.spec.containers[0], { name: 'patch-demo-ctr-2', image: 'redis' });
  t.same(out.spec.template.spec.containers[1].ports, [{ containerPort: 80 }], 'other containers untouched');
  t.same(live, deployment(), 'input untouched');
});

t.test('SMP: patching an existing container merges it in place', async (t) => {
  const out = smp(deployment(), { spec: { template: { spec: { containers: [{ name: 'log-tailer', image: 'busybox:1.36' }] } } } });
  t.same(names(out), ['nginx', 'log-tailer']);
  t.same(out.spec.template.spec.containers[1], { name: 'log-tailer', image: 'busybox:1.36', args: ['tail', '-f'] });
});

t.test('SMP: nested merge lists (env by name, ports by containerPort)', async (t) => {
  const out = smp(deployment(), {
    spec: { template: { spec: { containers: [{ name: 'nginx', env: [{ name: 'A', value: '2' }, { name: 'B', value: '3' }], ports: [{ containerPort: 443 }] }] } } },
  });
  const c = out.spec.template.spec.containers[0];
  t.same(c.env, [{ name: 'A', value: '2' }, { name: 'B', value: '3' }]);
  t.same(c.ports, [{ containerPort: 443 }, { containerPort: 80 }]);
  t.equal(c.image, 'nginx:1.25');
});

t.test('SMP: $patch: delete removes a list item by merge key', async (t) => {
  const out = smp(deployment(), {
    spec: { template: { spec: { containers: [{ name: 'nginx', image: 'nginx:1.26' }, { $patch: 'delete', name: 'log-tailer' }] } } },
  });
  t.same(names(out), ['nginx']);
  t.equal(out.spec.template.spec.containers[0].image, 'nginx:1.26');
  const e = thrown(() => smp(deployment(), { spec: { template: { spec: { containers: [{ $patch: 'delete', image: 'x' }] } } } }));
  t.match(e.message, /does not contain declared merge key: name/);
  t.equal(e.code, 422);
});

t.test('SMP: null deletes a map key', async (t) => {
  const out = smp(deployment(), { metadata: { labels: { tier: null, new: 'yes' } }, spec: { strategy: { rollingUpdate: null } } });
  t.same(out.metadata.labels, { app: 'web', new: 'yes' });
  t.same(out.spec.strategy, { type: 'RollingUpdate' });
  const out2 = smp(deployment(), { metadata: { annotations: { absent: null } } });
  t.same(out2.metadata.annotations, {}, 'a null for an absent key is dropped, its map stays');
});

t.test('SMP: $retainKeys clears the keys not listed (Deployment strategy docs example)', async (t) => {
  const out = smp(deployment(), { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate' } } });
  t.same(out.spec.strategy, { type: 'Recreate' });
  const e = thrown(() => smp(deployment(), { spec: { strategy: { $retainKeys: ['type'], type: 'Recreate', rollingUpdate: { maxSurge: 2 } } } }));
  t.equal(e.message, 'invalid patch format of retainKeys');
  t.equal(e.code, 400);
  // retainKeys on list items (volumes: merge,retainKeys): switch a volume's source
  const live = deployment();
  (live.spec as Obj).template.spec.volumes = [{ name: 'data', emptyDir: {} }, { name: 'cfg', configMap: { name: 'c' } }];
  const out2 = smp(live, { spec: { template: { spec: { volumes: [{ name: 'data', hostPath: { path: '/d' }, $retainKeys: ['hostPath', 'name'] }] } } } });
  t.same(out2.spec.template.spec.volumes, [{ name: 'data', hostPath: { path: '/d' } }, { name: 'cfg', configMap: { name: 'c' } }]);
});

t.test('SMP: $setElementOrder fixes the order of a merged list', async (t) => {
  const out = smp(deployment(), {
    spec: {
      template: {
        spec: {
          '$setElementOrder/containers': [{ name: 'log-tailer' }, { name: 'sidecar' }, { name: 'nginx' }],
          containers: [{ name: 'sidecar', image: 'envoy' }],
        },
      },
    },
  });
  t.same(names(out), ['log-tailer', 'sidecar', 'nginx']);
  // primitives
  const out2 = smp(deployment(), { metadata: { '$setElementOrder/finalizers': ['c', 'b', 'a'], finalizers: ['c'] } });
  t.same(out2.metadata.finalizers, ['c', 'b', 'a']);
  // a patch list that contradicts the order list
  const e = thrown(() => smp(deployment(), {
    spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'nginx' }, { name: 'x' }], containers: [{ name: 'x' }, { name: 'nginx' }] } } },
  }));
  t.match(e.message, /doesn't match \$setElementOrder list/);
});

t.test('SMP: primitive merge lists are unioned; $deleteFromPrimitiveList removes', async (t) => {
  const out = smp(deployment(), { metadata: { finalizers: ['c', 'a'] } });
  t.same(out.metadata.finalizers.slice().sort(), ['a', 'b', 'c']);
  t.equal(out.metadata.finalizers.length, 3, 'no duplicates');
  const out2 = smp(deployment(), { metadata: { '$deleteFromPrimitiveList/finalizers': ['a', 'zzz'] } });
  t.same(out2.metadata.finalizers, ['b']);
  const e = thrown(() => smp(deployment(), { metadata: { '$deleteFromPrimitiveList/finalizers': 'a' } }));
  t.equal(e.message, 'invalid patch format of primitive list');
});

t.test('SMP: lists without a merge strategy are replaced (tolerations docs example)', async (t) => {
  const out = smp(deployment(), { spec: { template: { spec: { tolerations: [{ effect: 'NoSchedule', key: 'disktype', operator: 'Exists' }] } } } });
  t.same(out.spec.template.spec.tolerations, [{ effect: 'NoSchedule', key: 'disktype', operator: 'Exists' }]);
  const out2 = smp(deployment(), { spec: { template: { spec: { containers: [{ name: 'log-tailer', args: ['cat'] }] } } } });
  t.same(out2.spec.template.spec.containers[1].args, ['cat'], 'container args (atomic) replaced');
});

t.test('SMP: $patch: replace on a map and in a list', async (t) => {
  const out = smp(deployment(), { spec: { template: { spec: { $patch: 'replace', containers: [{ name: 'only', image: 'x' }] } } } });
  t.same(out.spec.template.spec, { containers: [{ name: 'only', image: 'x' }] }, 'tolerations gone with the replaced map');
  const out2 = smp(deployment(), { spec: { template: { spec: { containers: [{ $patch: 'replace' }, { name: 'solo', image: 'y' }] } } } });
  t.same(out2.spec.template.spec.containers, [{ name: 'solo', image: 'y' }]);
  t.same(out2.spec.template.spec.tolerations, [{ key: 'k1', operator: 'Exists' }]);
  const out3 = smp(deployment(), { metadata: { labels: { $patch: 'replace', only: 'me' } } });
  t.same(out3.metadata.labels, { only: 'me' });
});

t.test('SMP: $patch: delete on a map, $patch: merge, unknown directives', async (t) => {
  const out = smp(deployment(), { spec: { strategy: { $patch: 'delete' } } });
  t.notOk('strategy' in out.spec);
  const out2 = smp(deployment(), { metadata: { labels: { $patch: 'merge', x: 'y' } } });
  t.same(out2.metadata.labels, { app: 'web', tier: 'front', x: 'y' });
  const out3 = smp(deployment(), { spec: { template: { spec: { containers: [{ $patch: 'merge', name: 'nginx', image: 'n2' }] } } } });
  t.equal(out3.spec.template.spec.containers[0].image, 'n2');
  const e = thrown(() => smp(deployment(), { metadata: { labels: { $patch: 'explode' } } }));
  t.match(e.message, /^unknown patch type: "explode" in map/);
});

t.test('SMP: new values are cleaned of nulls and directives', async (t) => {
  const live = deployment();
  delete (live.spec as Obj).strategy;
  const out = smp(live, {
    spec: {
      strategy: { type: 'Recreate', rollingUpdate: null },
      template: { spec: { containers: [{ name: 'new', image: 'i', env: [{ name: 'X', value: null }, { name: 'gone', $patch: 'delete' }] }] } },
    },
  });
  t.same(out.spec.strategy, { type: 'Recreate' });
  t.same(out.spec.template.spec.containers[0], { name: 'new', image: 'i', env: [{ name: 'X' }] });
});

t.test('SMP: fields outside the schema get JSON merge semantics', async (t) => {
  const live = { spec: { template: { spec: { extra: { a: [1, 2], m: { x: 1, y: 2 } } } } }, unknown: { list: [{ name: 'a', v: 1 }] } };
  const out = smp(live, { spec: { template: { spec: { extra: { a: [3], m: { y: null, z: 3 } } } } }, unknown: { list: [{ name: 'a', w: 2 }] } });
  t.same(out.spec.template.spec.extra, { a: [3], m: { x: 1, z: 3 } });
  t.same(out.unknown, { list: [{ name: 'a', w: 2 }] }, 'unknown lists are replaced');
  t.same(applyStrategicMergePatch({ a: { b: 1 } }, { a: { c: 2 } }, undefined), { a: { b: 1, c: 2 } }, 'no schema at all');
});

t.test('SMP: type changes replace, scalars replace, bad documents', async (t) => {
  t.same(smp({ spec: { replicas: 1 } }, { spec: { replicas: 3 } }), { spec: { replicas: 3 } });
  t.same(smp({ spec: { template: 'odd' } }, { spec: { template: { spec: {} } } }), { spec: { template: { spec: {} } } });
  let e = thrown(() => applyStrategicMergePatch({}, [1], schema));
  t.equal(e.code, 400);
  e = thrown(() => applyStrategicMergePatch('str', {}, schema));
  t.equal(e.code, 400);
  e = thrown(() => smp(deployment(), { spec: { template: { spec: { containers: [{ image: 'no-name' }] } } } }));
  t.match(e.message, /does not contain declared merge key: name/);
  e = thrown(() => smp(deployment(), { metadata: { finalizers: [{ a: 1 }] } }));
  t.match(e.message, /list element types are not identical/);
  t.same(applyStrategicMergePatch(undefined, { a: 1 }, schema), { a: 1 });
});

t.test('SMP: two-way merge patch round-trips', async (t) => {
  const original = deployment();
  const modified = deployment() as Obj;
  modified.metadata.labels = { app: 'web', env: 'prod' };
  modified.metadata.finalizers = ['b', 'c'];
  modified.spec.replicas = 5;
  delete modified.spec.strategy.rollingUpdate;
  modified.spec.template.spec.containers = [
    { name: 'log-tailer', image: 'busybox:2', args: ['tail', '-f'] },
    { name: 'sidecar', image: 'envoy' },
  ];
  modified.spec.template.spec.tolerations = [];
  const patch = createTwoWayMergePatch(original, modified, schema) as Obj;
  t.same(patch.metadata.labels, { env: 'prod', tier: null });
  t.same(patch.metadata['$deleteFromPrimitiveList/finalizers'], ['a']);
  t.same(patch.spec.template.spec['$setElementOrder/containers'], [{ name: 'log-tailer' }, { name: 'sidecar' }]);
  t.same(patch.spec.template.spec.containers.find((c: Obj) => c.$patch), { $patch: 'delete', name: 'nginx' });
  t.same(applyStrategicMergePatch(original, patch, schema), modified);
  t.same(createTwoWayMergePatch(original, original, schema), {}, 'no change, empty patch');
  // reordering only
  const reordered = deployment() as Obj;
  reordered.spec.template.spec.containers.reverse();
  const p2 = createTwoWayMergePatch(original, reordered, schema) as Obj;
  t.same(p2, { spec: { template: { spec: { '$setElementOrder/containers': [{ name: 'log-tailer' }, { name: 'nginx' }] } } } });
  t.same(applyStrategicMergePatch(original, p2, schema), reordered);
});

// ---------------------------------------------------------------------------
// server-side apply

const NOW1 = '2024-05-01T10:00:00Z';
const NOW2 = '2024-05-01T11:00:00Z';
const NOW3 = '2024-05-01T12:00:00Z';

function opts(manager: string, now: string, extra: Partial<ApplyOptions> = {}): ApplyOptions {
  return { manager, force: false, schema, apiVersion: 'apps/v1', now, kind: 'Deployment', ...extra };
}

function config(spec: Obj, metadata: Obj = {}): KubeObject {
  return { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'default', ...metadata }, spec };
}

function entry(o: KubeObject, manager: string, operation = 'Apply'): Obj | undefined {
  return (o.metadata?.managedFields ?? []).find((e) => e.manager === manager && e.operation === operation) as Obj | undefined;
}

const baseSpec = (): Obj => ({
  replicas: 3,
  selector: { matchLabels: { app: 'web' } },
  template: {
    metadata: { labels: { app: 'web' } },
    spec: { containers: [{ name: 'nginx', image: 'nginx:1.25', ports: [{ containerPort: 80 }] }] },
  },
});

t.test('SSA: first apply creates the object with an Apply entry', async (t) => {
  const applied = config(baseSpec(), { labels: { app: 'web' } });
  const r = serverSideApply(undefined, applied, opts('kubectl', NOW1));
  t.notOk(r.conflicts);
  t.ok(r.changed);
  const { managedFields, ...meta } = r.object.metadata!;
  t.same({ ...r.object, metadata: meta }, applied);
  t.same(managedFields, [{
    manager: 'kubectl',
    operation: 'Apply',
    apiVersion: 'apps/v1',
    time: NOW1,
    fieldsType: 'FieldsV1',
    fieldsV1: {
      'f:metadata': { 'f:labels': { 'f:app': {} } },
      'f:spec': {
        'f:replicas': {},
        'f:selector': {},
        'f:template': {
          'f:metadata': { 'f:labels': { 'f:app': {} } },
          'f:spec': {
            'f:containers': {
              'k:{"name":"nginx"}': {
                '.': {},
                'f:image': {},
                'f:name': {},
                'f:ports': { 'k:{"containerPort":80,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {} } },
              },
            },
          },
        },
      },
    },
  }]);
  t.same(applied.metadata, { name: 'web', namespace: 'default', labels: { app: 'web' } }, 'applied config untouched');
});

t.test('SSA: re-applying the same configuration changes nothing', async (t) => {
  const first = serverSideApply(undefined, config(baseSpec()), opts('kubectl', NOW1)).object;
  const again = serverSideApply(first, config(baseSpec()), opts('kubectl', NOW2));
  t.notOk(again.changed);
  t.same(again.object, first);
  t.equal(entry(again.object, 'kubectl')!.time, NOW1, 'time kept when nothing changed');
});

t.test('SSA: fields dropped from the configuration are removed', async (t) => {
  const spec = baseSpec();
  spec.template.spec.containers.push({ name: 'sidecar', image: 'envoy' });
  spec.paused = true;
  const first = serverSideApply(undefined, config(spec, { labels: { app: 'web', team: 'x' } }), opts('kubectl', NOW1)).object;

  const next = baseSpec();
  delete next.template.spec.containers[0].ports;
  const r = serverSideApply(first, config(next, { labels: { app: 'web' } }), opts('kubectl', NOW2));
  const o = r.object as Obj;
  t.ok(r.changed);
  t.same(o.metadata.labels, { app: 'web' }, 'label removed');
  t.notOk('paused' in o.spec, 'field removed');
  t.same(o.spec.template.spec.containers, [{ name: 'nginx', image: 'nginx:1.25' }], 'list item and nested list removed');
  t.equal(entry(r.object, 'kubectl')!.time, NOW2);
  t.same(entry(r.object, 'kubectl')!.fieldsV1['f:spec']['f:template']['f:spec'], {
    'f:containers': { 'k:{"name":"nginx"}': { '.': {}, 'f:image': {}, 'f:name': {} } },
  });

  // Dropping every label removes the emptied map too.
  const r2 = serverSideApply(r.object, config(next), opts('kubectl', NOW3));
  t.notOk('labels' in (r2.object.metadata as Obj));
  t.equal(r2.object.metadata!.name, 'web', 'identity fields are never pruned');
});

t.test('SSA: a dropped field another manager also owns stays', async (t) => {
  const a = serverSideApply(undefined, config({ replicas: 3, paused: true }), opts('a', NOW1)).object;
  const b = serverSideApply(a, config({ paused: true }), opts('b', NOW2)).object;
  t.ok(entry(b, 'a') && entry(b, 'b'), 'same value: shared ownership, no conflict');
  const r = serverSideApply(b, config({ replicas: 3 }), opts('a', NOW3));
  t.equal((r.object as Obj).spec.paused, true, 'still owned by b');
  t.same(entry(r.object, 'a')!.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
});

t.test('SSA: two appliers own different items of one list', async (t) => {
  const a = serverSideApply(undefined, config({ template: { spec: { containers: [{ name: 'app', image: 'app:1' }] } } }), opts('a', NOW1)).object;
  const b = serverSideApply(a, config({ template: { spec: { containers: [{ name: 'proxy', image: 'envoy' }] } } }), opts('b', NOW2)).object;
  t.same(names(b as Obj), ['app', 'proxy']);
  const a2 = serverSideApply(b, config({ template: { spec: { containers: [{ name: 'app', image: 'app:2' }] } } }), opts('a', NOW3)).object;
  t.same((a2 as Obj).spec.template.spec.containers, [{ name: 'app', image: 'app:2' }, { name: 'proxy', image: 'envoy' }]);
  const a3 = serverSideApply(a2, config({ replicas: 1 }), opts('a', NOW3)).object;
  t.same(names(a3 as Obj), ['proxy'], "a's item removed, b's kept");
});

t.test('SSA: conflict with an Update manager (kubectl edit / client-side apply)', async (t) => {
  const created = updateManagedFieldsForUpdate(undefined, deployment(), 'kubectl-client-side-apply', NOW1, 'apps/v1', { schema });
  const r = serverSideApply(created, config({ replicas: 5, template: { spec: { containers: [{ name: 'nginx', image: 'nginx:1.25' }] } } }), opts('mgr', NOW2));
  t.ok(r.conflicts);
  t.notOk(r.changed);
  t.same(r.object, created, 'live returned unchanged');
  const conflicts = r.conflicts!;
  t.same(conflicts.map((c) => c.field), ['.spec.replicas'], 'same image: no conflict');
  t.equal(formatConflictMessage(conflicts), 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas');
  t.equal(formatConflicts(conflicts), formatConflictMessage(conflicts));
  t.same(conflictStatus(conflicts), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas',
    reason: 'Conflict',
    details: { causes: [{ type: 'FieldManagerConflict', message: 'conflict with "kubectl-client-side-apply" using apps/v1', field: '.spec.replicas' }] },
    code: 409,
  });
});

t.test('SSA: several conflicts, list item paths', async (t) => {
  const created = updateManagedFieldsForUpdate(undefined, deployment(), 'kubectl-edit', NOW1, 'apps/v1', { schema });
  const r = serverSideApply(created, config({
    replicas: 9,
    paused: false,
    template: { spec: { containers: [{ name: 'nginx', image: 'nginx:2', ports: [{ containerPort: 80, name: 'http' }] }] } },
  }), opts('mgr', NOW2));
  t.same(r.conflicts!.map((c) => c.field), ['.spec.replicas', '.spec.template.spec.containers[name="nginx"].image']);
  t.equal(formatConflictMessage(r.conflicts!),
    'Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name="nginx"].image');
  const applier = serverSideApply(undefined, config({ replicas: 1 }), opts('ci', NOW1)).object;
  const r2 = serverSideApply(applier, config({ replicas: 2 }), opts('other', NOW2));
  t.equal(formatConflictMessage(r2.conflicts!), 'Apply failed with 1 conflict: conflict with "ci": .spec.replicas', 'an Apply owner has no "using"');
});

t.test('SSA: force takes ownership', async (t) => {
  const created = updateManagedFieldsForUpdate(undefined, deployment(), 'kubectl-client-side-apply', NOW1, 'apps/v1', { schema });
  const r = serverSideApply(created, config({ replicas: 5 }), opts('mgr', NOW2, { force: true }));
  t.notOk(r.conflicts);
  t.equal((r.object as Obj).spec.replicas, 5);
  t.same(entry(r.object, 'mgr')!.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
  const old = entry(r.object, 'kubectl-client-side-apply', 'Update')!;
  t.notOk('f:replicas' in old.fieldsV1['f:spec'], 'the old owner lost the field');
  t.ok('f:strategy' in old.fieldsV1['f:spec'], 'but kept the rest');
  t.same(r.object.metadata!.managedFields!.map((e) => `${e.operation}:${e.manager}`), ['Apply:mgr', 'Update:kubectl-client-side-apply'], 'Apply entries sort first');
  // Now the other way round: an update takes the field back without conflict.
  const edited = structuredClone(r.object) as Obj;
  edited.spec.replicas = 7;
  const after = updateManagedFieldsForUpdate(r.object, edited as KubeObject, 'kubectl-edit', NOW3, 'apps/v1', { schema });
  t.equal(after, edited, 'updated in place and returned');
  t.notOk(entry(after, 'mgr'), 'the applier lost its only field, its entry is gone');
  t.same(entry(after, 'kubectl-edit', 'Update')!.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
  const again = serverSideApply(after, config({ replicas: 5 }), opts('mgr', NOW3));
  t.equal(formatConflictMessage(again.conflicts!), 'Apply failed with 1 conflict: conflict with "kubectl-edit" using apps/v1: .spec.replicas');
});

t.test('SSA: list order follows structured-merge-diff', async (t) => {
  const mk = (ns: string[]) => config({ template: { spec: { containers: ns.map((name) => ({ name })) } } });
  const live = serverSideApply(undefined, mk(['a', 'b', 'c']), opts('x', NOW1)).object;
  t.same(names(serverSideApply(live, mk(['d', 'b']), opts('y', NOW2)).object as Obj), ['a', 'd', 'b', 'c']);
  t.same(names(serverSideApply(live, mk(['c', 'a']), opts('y', NOW2)).object as Obj), ['b', 'c', 'a']);
  t.same(names(serverSideApply(live, mk(['b', 'e']), opts('y', NOW2)).object as Obj), ['a', 'b', 'c', 'e']);
});

t.test('SSA: null claims a field and clears it', async (t) => {
  const live = serverSideApply(undefined, config({ replicas: 3, paused: true }), opts('a', NOW1)).object;
  const r = serverSideApply(live, config({ paused: null }), opts('b', NOW2, { force: true }));
  t.notOk('paused' in (r.object as Obj).spec);
  t.same(entry(r.object, 'b')!.fieldsV1, { 'f:spec': { 'f:paused': {} } });
  t.same(entry(r.object, 'a')!.fieldsV1, { 'f:spec': { 'f:replicas': {} } });
});

t.test('SSA: atomic maps and sets', async (t) => {
  const live = serverSideApply(undefined, config({ selector: { matchLabels: { app: 'web', v: '1' } } }, { finalizers: ['x'] }), opts('a', NOW1)).object as Obj;
  t.same(entry(live, 'a')!.fieldsV1, { 'f:metadata': { 'f:finalizers': { 'v:"x"': {} } }, 'f:spec': { 'f:selector': {} } });
  const r = serverSideApply(live, config({ selector: { matchLabels: { app: 'web' } } }, { finalizers: ['y'] }), opts('a', NOW2)).object as Obj;
  t.same(r.spec.selector, { matchLabels: { app: 'web' } }, 'atomic map replaced whole');
  t.same(r.metadata.finalizers, ['y'], 'set item no longer applied is removed');
  const b = serverSideApply(live, config({}, { finalizers: ['z'] }), opts('b', NOW2)).object as Obj;
  t.same(b.metadata.finalizers, ['x', 'z'], 'sets merge');
});

t.test('SSA: free-form (type any) objects are granular maps', async (t) => {
  const r = serverSideApply(undefined, config({ template: { spec: { extra: { a: { b: 1 }, l: [1] } } } }), opts('a', NOW1)).object;
  t.same(entry(r, 'a')!.fieldsV1['f:spec']['f:template']['f:spec'], { 'f:extra': { 'f:a': { '.': {}, 'f:b': {} }, 'f:l': {} } });
});

t.test('SSA: objects without managedFields get a before-first-apply owner', async (t) => {
  const live = deployment();
  const r = serverSideApply(live, config({ replicas: 9 }), opts('mgr', NOW2));
  t.equal(r.conflicts![0].manager, BEFORE_FIRST_APPLY_MANAGER);
  t.equal(formatConflictMessage(r.conflicts!), 'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas');
  const forced = serverSideApply(live, config({ replicas: 9 }), opts('mgr', NOW2, { force: true }));
  const bfa = entry(forced.object, BEFORE_FIRST_APPLY_MANAGER, 'Update')!;
  t.equal(bfa.time, NOW2);
  t.ok(bfa.fieldsV1['f:spec']['f:template'], 'owns the rest of the object');
  t.notOk(bfa.fieldsV1['f:metadata']['f:name'], 'never identity fields');
});

t.test('SSA: kubectl upgrades from client-side apply without conflicts', async (t) => {
  const lastApplied = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web', namespace: 'default' }, spec: { replicas: 2 } };
  const live = deployment() as Obj;
  live.metadata.annotations = { [LAST_APPLIED_ANNOTATION]: JSON.stringify(lastApplied) };
  const created = updateManagedFieldsForUpdate(undefined, live as KubeObject, 'kubectl-client-side-apply', NOW1, 'apps/v1', { schema });
  const cfg = config({ replicas: 2, paused: true });
  const r = serverSideApply(created, cfg, opts('kubectl', NOW2));
  t.notOk(r.conflicts, 'replicas still as last applied: taken over');
  t.same(entry(r.object, 'kubectl')!.fieldsV1, { 'f:spec': { 'f:paused': {}, 'f:replicas': {} } });
  t.same(JSON.parse((r.object.metadata!.annotations as Obj)[LAST_APPLIED_ANNOTATION]), cfg, 'annotation follows the applied config');
  // A field changed since the last client-side apply still conflicts.
  const edited = structuredClone(created) as Obj;
  edited.spec.replicas = 4;
  const e2 = updateManagedFieldsForUpdate(created, edited as KubeObject, 'kubectl-edit', NOW2, 'apps/v1', { schema });
  const r2 = serverSideApply(e2, config({ replicas: 2 }), opts('kubectl', NOW3));
  t.same(r2.conflicts!.map((c) => `${c.manager}${c.field}`), ['kubectl-edit.spec.replicas']);
  const other = serverSideApply(created, config({ replicas: 5 }), opts('helm', NOW2));
  t.ok(other.conflicts, 'only the "kubectl" manager gets the upgrade path');
});

t.test('SSA: bad configurations', async (t) => {
  let e = thrown(() => serverSideApply(undefined, config({}, { managedFields: [] }), opts('a', NOW1)));
  t.equal(e.message, 'metadata.managedFields must be nil');
  t.equal(e.code, 400);
  e = thrown(() => serverSideApply(undefined, { ...config({}), apiVersion: 'apps/v1beta1' }, opts('a', NOW1)));
  t.equal(e.message, 'invalid object type: apps/v1beta1, Kind=Deployment');
  e = thrown(() => serverSideApply(undefined, { ...config({}), kind: 'StatefulSet' }, opts('a', NOW1)));
  t.equal(e.code, 400);
  e = thrown(() => serverSideApply(undefined, [], opts('a', NOW1)));
  t.equal(e.code, 400);
  e = thrown(() => serverSideApply(undefined, config({ template: { spec: { containers: [{ name: 'a' }, { name: 'a', image: 'x' }] } } }), opts('a', NOW1)));
  t.equal(e.message, 'failed to create typed patch object (default/web; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name="a"]');
  t.equal(e.code, 422);
  e = thrown(() => serverSideApply(undefined, config({ template: { spec: { containers: [{ image: 'x' }] } } }), opts('a', NOW1)));
  t.match(e.message, /\.spec\.template\.spec\.containers: element 0: associative list with keys has an element that omits key field "name"/);
  e = thrown(() => serverSideApply(undefined, config({ template: { spec: { containers: [{ name: 'c', ports: [{ containerPort: 80 }, { containerPort: 80, protocol: 'TCP' }] }] } } }), opts('a', NOW1)));
  t.match(e.message, /containers\[name="c"\]\.ports: duplicate entries for key \[containerPort=80,protocol="TCP"\]/, 'defaulted key fields count');
});

t.test('SSA: subresource and apiVersion are part of the entry', async (t) => {
  const live = serverSideApply(undefined, config({ replicas: 1 }), opts('a', NOW1)).object;
  const r = serverSideApply(live, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, status: { replicas: 1 } }, opts('ctrl', NOW2, { subresource: 'status' }));
  const e = entry(r.object, 'ctrl')!;
  t.equal(e.subresource, 'status');
  t.same(e.fieldsV1, { 'f:status': { 'f:replicas': {} } });
  const status = updateManagedFieldsForUpdate(r.object, { ...structuredClone(r.object), status: { replicas: 2 } } as KubeObject, 'ctrl', NOW3, 'apps/v1', 'status');
  const u = entry(status, 'ctrl', 'Update')!;
  t.equal(u.subresource, 'status');
  const c = serverSideApply(status, { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, status: { replicas: 3 } }, opts('other', NOW3, { subresource: 'status' }));
  t.equal(formatConflictMessage(c.conflicts!), 'Apply failed with 1 conflict: conflict with "ctrl" with subresource "status" using apps/v1: .status.replicas');
});

// ---------------------------------------------------------------------------
// managed fields for updates

t.test('Update: create records every field set by the creator', async (t) => {
  const obj = deployment();
  obj.metadata!.uid = 'u1';
  obj.metadata!.resourceVersion = '5';
  const out = updateManagedFieldsForUpdate(undefined, obj, 'kubectl-create', NOW1, 'apps/v1', { schema });
  t.equal(out, obj, 'in place');
  const mf = out.metadata!.managedFields!;
  t.equal(mf.length, 1);
  t.same({ ...mf[0], fieldsV1: undefined }, { manager: 'kubectl-create', operation: 'Update', apiVersion: 'apps/v1', time: NOW1, fieldsType: 'FieldsV1', fieldsV1: undefined });
  t.same(mf[0].fieldsV1, {
    'f:metadata': { 'f:finalizers': { '.': {}, 'v:"a"': {}, 'v:"b"': {} }, 'f:labels': { '.': {}, 'f:app': {}, 'f:tier': {} } },
    'f:spec': {
      'f:replicas': {},
      'f:selector': {},
      'f:strategy': { 'f:rollingUpdate': { 'f:maxSurge': {}, 'f:maxUnavailable': {} }, 'f:type': {} },
      'f:template': {
        'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } },
        'f:spec': {
          'f:containers': {
            '.': {},
            'k:{"name":"log-tailer"}': { '.': {}, 'f:args': {}, 'f:image': {}, 'f:name': {} },
            'k:{"name":"nginx"}': {
              '.': {},
              'f:env': { '.': {}, 'k:{"name":"A"}': { '.': {}, 'f:name': {}, 'f:value': {} } },
              'f:image': {},
              'f:name': {},
              'f:ports': { '.': {}, 'k:{"containerPort":80,"protocol":"TCP"}': { '.': {}, 'f:containerPort': {} } },
            },
          },
          'f:tolerations': {},
        },
      },
    },
  });
});

t.test('Update: changes move ownership, removals drop it, no-ops keep it', async (t) => {
  const created = updateManagedFieldsForUpdate(undefined, deployment(), 'creator', NOW1, 'apps/v1', { schema });
  const next = structuredClone(created) as Obj;
  next.spec.replicas = 4;
  delete next.metadata.labels.tier;
  next.spec.template.spec.containers[0].image = 'nginx:2';
  const out = updateManagedFieldsForUpdate(created, next as KubeObject, 'editor', NOW2, 'apps/v1', { schema });
  const editor = entry(out, 'editor', 'Update')!;
  t.same(editor.fieldsV1, { 'f:spec': { 'f:replicas': {}, 'f:template': { 'f:spec': { 'f:containers': { 'k:{"name":"nginx"}': { 'f:image': {} } } } } } });
  const creator = entry(out, 'creator', 'Update')!;
  t.same(creator.fieldsV1['f:metadata']['f:labels'], { '.': {}, 'f:app': {} }, 'removed label dropped');
  t.notOk('f:replicas' in creator.fieldsV1['f:spec']);
  t.notOk('f:image' in creator.fieldsV1['f:spec']['f:template']['f:spec']['f:containers']['k:{"name":"nginx"}']);
  // A write that changes nothing leaves managedFields alone (time included).
  const same = structuredClone(out);
  const out2 = updateManagedFieldsForUpdate(out, same, 'third', NOW3, 'apps/v1', { schema });
  t.same(out2.metadata!.managedFields, out.metadata!.managedFields);
  // The same manager accumulates its fields.
  const more = structuredClone(out) as Obj;
  more.spec.paused = true;
  const out3 = updateManagedFieldsForUpdate(out, more as KubeObject, 'editor', NOW3, 'apps/v1', { schema });
  const e3 = entry(out3, 'editor', 'Update')!;
  t.equal(e3.time, NOW3);
  t.ok('f:replicas' in e3.fieldsV1['f:spec'] && 'f:paused' in e3.fieldsV1['f:spec']);
  t.equal(out3.metadata!.managedFields!.length, 2);
});

t.test('Update: managedFields sent by the client, reset, resourceVersion-only changes', async (t) => {
  const created = updateManagedFieldsForUpdate(undefined, deployment(), 'creator', NOW1, 'apps/v1', { schema });
  const reset = structuredClone(created);
  reset.metadata!.managedFields = [{} as never];
  reset.spec = { ...(reset.spec as Obj), replicas: 10 };
  const out = updateManagedFieldsForUpdate(created, reset, 'editor', NOW2, 'apps/v1', { schema });
  t.notOk('managedFields' in out.metadata!, '[{}] resets');

  const custom = structuredClone(created);
  custom.metadata!.managedFields = [{ manager: 'imported', operation: 'Apply', apiVersion: 'apps/v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:paused': {} } } }];
  const out2 = updateManagedFieldsForUpdate(created, custom, 'editor', NOW2, 'apps/v1', { schema });
  t.same(out2.metadata!.managedFields!.map((e) => e.manager), ['imported'], 'client-sent managedFields replace the recorded ones');

  const emptyList = structuredClone(created);
  emptyList.metadata!.managedFields = [];
  const out3 = updateManagedFieldsForUpdate(created, emptyList, 'editor', NOW2, 'apps/v1', { schema });
  t.same(out3.metadata!.managedFields, created.metadata!.managedFields, 'an empty list keeps the recorded ones');

  const bumped = structuredClone(created);
  bumped.metadata!.resourceVersion = '99';
  bumped.metadata!.generation = 3;
  const out4 = updateManagedFieldsForUpdate(created, bumped, 'server', NOW2, 'apps/v1', { schema });
  t.same(out4.metadata!.managedFields, created.metadata!.managedFields, 'server-owned metadata is never recorded');
});

// ---------------------------------------------------------------------------
// field sets

t.test('FieldSet: fieldsV1 round trip and set algebra', async (t) => {
  const v1 = {
    'f:metadata': { 'f:labels': { '.': {}, 'f:a': {} } },
    'f:spec': { 'f:containers': { 'k:{"name":"x"}': { '.': {}, 'f:image': {} } }, 'f:list': { 'v:"q"': {}, 'i:2': {} } },
  };
  const s = FieldSet.fromFieldsV1(v1);
  t.same(s.toFieldsV1(), v1);
  t.ok(s.has(['f:metadata', 'f:labels']));
  t.notOk(s.has(['f:metadata']));
  t.ok(s.has(['f:spec', 'f:containers', 'k:{"name":"x"}', 'f:image']));
  t.same(s.paths().map(pathToString), ['.metadata.labels', '.metadata.labels.a', '.spec.containers[name="x"]', '.spec.containers[name="x"].image', '.spec.list[="q"]', '.spec.list[2]']);
  const other = FieldSet.fromPaths([['f:metadata', 'f:labels', 'f:a'], ['f:spec', 'f:new']]);
  t.same(s.intersection(other).paths(), [['f:metadata', 'f:labels', 'f:a']]);
  t.same(other.difference(s).paths(), [['f:spec', 'f:new']]);
  t.equal(s.union(other).paths().length, 7);
  t.ok(s.equals(FieldSet.fromFieldsV1(JSON.parse(JSON.stringify(v1)))));
  t.ok(FieldSet.fromFieldsV1({ 'k:{ "name" : "x" }': {} }).has(['k:{"name":"x"}']), 'keys are normalised');
  t.throws(() => FieldSet.fromFieldsV1({ 'x:bad': {} }));
  t.same(toFieldSet({ spec: { replicas: 1, template: { spec: { containers: [{ name: 'c' }] } } } }, schema).paths().map(pathToString),
    ['.spec.replicas', '.spec.template.spec.containers[name="c"]', '.spec.template.spec.containers[name="c"].name']);
});

t.test('conflict formatting helpers', async (t) => {
  const c = (manager: string, field: string, operation: 'Apply' | 'Update' = 'Update'): Conflict =>
    ({ manager, operation, apiVersion: 'v1', field, path: [] });
  t.equal(formatConflictMessage([c('b', '.x'), c('a', '.y', 'Apply'), c('b', '.z')]),
    'Apply failed with 3 conflicts: conflicts with "a":\n- .y\nconflicts with "b" using v1:\n- .x\n- .z');
});
