import t from 'tap';
import { arr, int, intOrString, listMap, map, obj, oneOf, quantity, str, time } from '../api/schema/dsl.ts';
import {
  QUANTITY_FORMAT_ERROR, base64Error, isConfigMapKey, isDNS1035Label, isDNS1123Label, isDNS1123Subdomain, isDateTime, isEnvVarName,
  isQualifiedName, isQuantity, isValidIP, isValidLabelValue, isValidPortName, maskTrailingDash, parseQuantity, pruneUnknownFields,
  validateSchema,
} from '../api/schema/validate.ts';

t.test('parseQuantity gives canonical values', async (t) => {
  const cases: [string | number, number][] = [
    ['100m', 0.1], ['1', 1], ['2', 2], ['1.5', 1.5], ['0.5', 0.5], ['.5', 0.5], ['1e3', 1000], ['1E3', 1000], ['1e-3', 0.001], ['+2', 2], ['-1', -1],
    ['1k', 1000], ['1M', 1e6], ['1G', 1e9], ['1T', 1e12], ['1P', 1e15], ['1E', 1e18], ['250u', 0.00025], ['5n', 5e-9],
    ['1Ki', 1024], ['500Mi', 500 * 2 ** 20], ['1Gi', 2 ** 30], ['1.5Gi', 1.5 * 2 ** 30], ['2Ti', 2 * 2 ** 40], ['1Pi', 2 ** 50], ['1Ei', 2 ** 60],
    ['3800m', 3.8], ['128974848', 128974848], ['129e6', 129e6], ['123Mi', 123 * 2 ** 20], [4, 4], [0.25, 0.25],
  ];
  for (const [q, want] of cases) t.equal(parseQuantity(q), want, String(q));
  for (const bad of ['', '1GB', '1K', '1kb', 'abc', '1 Gi', ' 1', '1e', '--1', '1.2.3', 'Gi', '1mi']) {
    t.notOk(isQuantity(bad), `"${bad}" is not a quantity`);
    t.throws(() => parseQuantity(bad), { message: QUANTITY_FORMAT_ERROR });
  }
  t.ok(isQuantity(2));
  t.notOk(isQuantity(Infinity));
});

t.test('name validators with Kubernetes messages', async (t) => {
  t.same(isDNS1123Label('my-name'), []);
  t.same(isDNS1123Label('a.b'), ['must not contain dots']);
  t.same(isDNS1123Label('-a'), ["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
    .map((m) => m.replace(",  or", ', or')));
  t.same(isDNS1123Label('a'.repeat(64)), ['must be no more than 63 characters']);
  t.same(isDNS1123Subdomain('example.com'), []);
  t.same(isDNS1123Subdomain('Example.com'), ["a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]);
  t.same(isDNS1123Subdomain('a'.repeat(254)).length, 1);
  t.same(isDNS1035Label('1abc'), ["a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]);
  t.same(isQualifiedName('app.kubernetes.io/name'), []);
  t.same(isQualifiedName('MyName'), []);
  t.same(isQualifiedName('/name'), ['prefix part must be non-empty']);
  t.same(isQualifiedName('Example.com/name'), ["prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"]);
  t.same(isQualifiedName('prefix/'), ['name part must be non-empty', "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"].map((m) => m.replace(/,  or/g, ', or')));
  t.equal(isQualifiedName('x'.repeat(64))[0], 'name part must be no more than 63 characters');
  t.same(isValidLabelValue(''), []);
  t.same(isValidLabelValue('v1.2_3-a'), []);
  t.match(isValidLabelValue('-x')[0], /^a valid label must be an empty string or consist of alphanumeric characters/);
  t.same(isConfigMapKey('..data'), ["must not start with '..'"]);
  t.same(isConfigMapKey('.env'), []);
  t.match(isConfigMapKey('a/b')[0], /^a valid config key must consist of alphanumeric characters, '-', '_' or '.'/);
  t.same(isValidPortName('http'), []);
  t.same(isValidPortName('a--b'), ['must not contain consecutive hyphens']);
  t.same(isValidPortName('123'), ['must contain at least one letter (a-z)']);
  t.same(isEnvVarName('MY_VAR.1-x'), []);
  t.same(isEnvVarName('A=B'), ["a valid environment variable name must consist only of printable ASCII characters other than '='"]);
  t.equal(maskTrailingDash('web-'), 'wea');
  t.same(isDNS1123Subdomain(maskTrailingDash('web-')), []);
  for (const ip of ['10.0.0.1', '::1', '2001:db8::ffff', 'fe80::1:2:3:4', '::ffff:10.0.0.1']) t.ok(isValidIP(ip), ip);
  for (const ip of ['10.0.0', '256.0.0.1', '01.2.3.4', 'a::b::c', 'hello', '1:2:3:4:5:6:7:8:9']) t.notOk(isValidIP(ip), ip);
});

t.test('formats: date-time and base64', async (t) => {
  for (const ok of ['2025-01-01T00:00:00Z', '2025-01-01T00:00:00.123456Z', '2025-01-01T01:00:00+01:00']) t.ok(isDateTime(ok), ok);
  for (const bad of ['2025-01-01', 'yesterday', '2025-13-01T00:00:00Z']) t.notOk(isDateTime(bad), bad);
  t.equal(base64Error('aGVsbG8='), '');
  t.equal(base64Error('aGVs\nbG8='), '', 'newlines are ignored');
  t.equal(base64Error(''), '');
  t.equal(base64Error('abc'), 'illegal base64 data at input byte 0');
  t.equal(base64Error('ab$d'), 'illegal base64 data at input byte 2');
});

const Item = obj({ name: str(), port: int(), protocol: str({ default: 'TCP' }) }, { required: ['name'] });
const S = obj({
  name: str({ maxLength: 5 }),
  mode: oneOf('A', 'B'),
  count: int({ minimum: 0, maximum: 10 }),
  size: quantity(),
  port: intOrString(),
  when: time(),
  labels: map(str()),
  items: listMap(Item, ['port', 'protocol']),
  tags: arr(str()),
  nested: obj({ deep: obj({ x: int() }) }),
}, { required: ['mode'] });

t.test('validateSchema', async (t) => {
  t.same(validateSchema(S, { mode: 'A', count: 3, size: '1Gi', port: 'http', when: '2025-01-01T00:00:00Z', labels: { a: 'b' }, items: [{ name: 'x', port: 1 }], tags: ['a'], nested: { deep: { x: 1 } } }), []);
  t.same(validateSchema(S, { mode: null, name: null }), [{ reason: 'FieldValueRequired', field: 'mode', message: 'Required value' }], 'null is unset');
  t.same(validateSchema(S, { mode: '' }), [{ reason: 'FieldValueRequired', field: 'mode', message: 'Required value' }], "'' is Go's unset");
  t.same(validateSchema(S, { mode: 'C', name: 'toolong', count: 11 }), [
    { reason: 'FieldValueNotSupported', field: 'mode', message: 'Unsupported value: "C": supported values: "A", "B"' },
    { reason: 'FieldValueTooLong', field: 'name', message: 'Too long: may not be more than 5 bytes' },
    { reason: 'FieldValueInvalid', field: 'count', message: 'Invalid value: 11: must be less than or equal to 10' },
  ]);
  t.same(validateSchema(S, { mode: 'A', port: true, size: [], when: 'now', nested: { deep: { x: 'y', z: 1 } } }), [
    { reason: 'FieldValueTypeInvalid', field: 'port', message: 'Invalid value: "boolean": port in body must be of type integer or string: "boolean"' },
    { reason: 'FieldValueTypeInvalid', field: 'size', message: 'Invalid value: "array": size in body must be of type string or number: "array"' },
    { reason: 'FieldValueInvalid', field: 'when', message: 'Invalid value: "now": when in body must be of type date-time: "now"' },
    { reason: 'FieldValueTypeInvalid', field: 'nested.deep.x', message: 'Invalid value: "string": nested.deep.x in body must be of type integer: "string"' },
    { reason: 'FieldValueUnknown', field: 'nested.deep.z', message: 'unknown field "nested.deep.z"' },
  ]);
  t.same(validateSchema(S, { mode: 'A', count: 2 ** 31 }).map((c) => c.message), ['Invalid value: 2147483648: must be a 32-bit integer', 'Invalid value: 2147483648: must be less than or equal to 10']);
  t.same(validateSchema(S, 'x'), [{ reason: 'FieldValueTypeInvalid', field: '', message: 'Invalid value: "string": body must be of type object: "string"' }]);
  t.same(validateSchema(S, { mode: 'A', items: [{ name: 'a', port: 80 }, { name: 'b', port: 80, protocol: 'TCP' }, { name: 'c', port: 80, protocol: 'UDP' }, { port: 1 }] }), [
    { reason: 'FieldValueRequired', field: 'items[3].name', message: 'Required value' },
    { reason: 'FieldValueDuplicate', field: 'items[1]', message: 'Duplicate value: {"port":80,"protocol":"TCP"}' },
  ], 'missing list-map keys take their default');
  t.same(validateSchema(S, { mode: 'A', labels: { a: 1 } })[0].field, 'labels[a]');
  t.same(validateSchema(S, { mode: 'A', tags: [1] })[0].field, 'tags[0]');
  t.same(validateSchema(S, { mode: 'A' }, 'spec'), [], 'path prefix');
  t.same(validateSchema(S, { mode: 'C' }, 'spec')[0].field, 'spec.mode');
});

t.test('pruneUnknownFields drops what the schema does not know', async (t) => {
  const o = { mode: 'A', extra: 1, nested: { deep: { x: 1, y: 2 }, z: 3 }, items: [{ name: 'a', bogus: true }], labels: { free: 'form' } };
  t.same(pruneUnknownFields(S, o), ['extra', 'nested.deep.y', 'nested.z', 'items[0].bogus']);
  t.same(o, { mode: 'A', nested: { deep: { x: 1 } }, items: [{ name: 'a' }], labels: { free: 'form' } });
  t.same(validateSchema(S, o), []);
});
