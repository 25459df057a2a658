import t from 'tap';
import {
  SelectorError, escapeFieldValue, fieldSelectorToString, fieldValue, labelSelectorMatches, labelSelectorToRequirements,
  labelSelectorToString, matchesFields, matchesLabels, newRequirement, parseFieldSelector, parseLabelSelector,
  requirementsToString, type LabelRequirement,
} from '../api/selectors.ts';

function error(fn: () => unknown): SelectorError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SelectorError) return e;
    throw e;
  }
  throw new Error('expected a SelectorError');
}

const req = (key: string, operator: LabelRequirement['operator'], values: string[] = []): LabelRequirement => ({ key, operator, values });

// ---------------------------------------------------------------------------
// label selector parsing

t.test('label selectors: every operator', async (t) => {
  t.same(parseLabelSelector('app=web'), [req('app', '=', ['web'])]);
  t.same(parseLabelSelector('app==web'), [req('app', '==', ['web'])]);
  t.same(parseLabelSelector('app!=web'), [req('app', '!=', ['web'])]);
  t.same(parseLabelSelector('env in (prod, staging)'), [req('env', 'in', ['prod', 'staging'])]);
  t.same(parseLabelSelector('env notin (dev)'), [req('env', 'notin', ['dev'])]);
  t.same(parseLabelSelector('app'), [req('app', 'exists')]);
  t.same(parseLabelSelector('!app'), [req('app', '!')]);
  t.same(parseLabelSelector(' ! app '), [req('app', '!')]);
  t.same(parseLabelSelector('n>5,n<10'), [req('n', 'gt', ['5']), req('n', 'lt', ['10'])]);
  t.same(parseLabelSelector('app='), [req('app', '=', [''])], 'empty value');
  t.same(parseLabelSelector('example.com/role=db'), [req('example.com/role', '=', ['db'])], 'prefixed key');
  t.same(parseLabelSelector('in=notin'), [req('in', '=', ['notin'])], 'keywords are plain words where a key or value goes');
  t.same(parseLabelSelector(''), []);
  t.same(parseLabelSelector('   '), []);
});

t.test('label selectors: comma is AND, requirements sorted by key, value sets sorted', async (t) => {
  const reqs = parseLabelSelector('tier in (web,api),app=x,!legacy,env');
  t.same(reqs.map((r) => r.key), ['app', 'env', 'legacy', 'tier']);
  t.same(reqs[3].values, ['api', 'web']);
  t.equal(requirementsToString(reqs), 'app=x,env,!legacy,tier in (api,web)');
  t.equal(requirementsToString(parseLabelSelector('a in (x,)')), 'a in (,x)');
  t.equal(requirementsToString(parseLabelSelector('a in ()')), 'a in ()');
  t.equal(requirementsToString(parseLabelSelector('k > 3 , j<2 ,x!=y')), 'j<2,k>3,x!=y');
});

t.test('label selectors: syntax errors', async (t) => {
  const cases: [string, string][] = [
    ['a in', "unable to parse requirement: found '' expected: '('"],
    ['a in (', "unable to parse requirement: found '', expected: ',', ')' or identifier"],
    ['a in (x', "unable to parse requirement: found '', expected: ',' or ')'"],
    ['a in (x y)', "unable to parse requirement: found 'y', expected: ',' or ')'"],
    ['a notin x', "unable to parse requirement: found 'x' expected: '('"],
    ['a b', "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"],
    ['a!', "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"],
    ['a=(b)', "unable to parse requirement: found '(', expected: identifier"],
    [',a', "found ',', expected: !, identifier, or 'end of string'"],
    ['a,', "found '', expected: identifier after ','"],
    ['a,,b', "found ',', expected: identifier after ','"],
    ['a=b=c', "found '=', expected: ',' or 'end of string'"],
    ['!a=b', "found '=', expected: ',' or 'end of string'"],
    ['!', "unable to parse requirement: found '', expected: identifier"],
  ];
  for (const [input, msg] of cases) {
    const e = error(() => parseLabelSelector(input));
    t.equal(e.message, msg, JSON.stringify(input));
    t.equal(e.code, 400);
  }
});

t.test('label selectors: key and value validation', async (t) => {
  let e = error(() => parseLabelSelector('-a=b'));
  t.match(e.message, /^unable to parse requirement: key: Invalid value: "-a": name part must consist of alphanumeric characters/);
  e = error(() => parseLabelSelector('a/b/c=d'));
  t.match(e.message, /a qualified name must consist of/);
  e = error(() => parseLabelSelector('Example.com/x=y'));
  t.match(e.message, /prefix part a lowercase RFC 1123 subdomain/);
  e = error(() => parseLabelSelector(`${'k'.repeat(64)}=v`));
  t.match(e.message, /name part must be no more than 63 characters/);
  e = error(() => parseLabelSelector('a=-b'));
  t.match(e.message, /values\[0\]\[a\]: Invalid value: "-b": a valid label must be an empty string or consist of alphanumeric/);
  e = error(() => parseLabelSelector(`a=${'v'.repeat(64)}`));
  t.match(e.message, /must be no more than 63 characters/);
  e = error(() => parseLabelSelector('x>abc'));
  t.match(e.message, /for 'Gt', 'Lt' operators, the value must be an integer/);
  e = error(() => parseLabelSelector('a in (x,-y)'));
  t.match(e.message, /values\[0\]\[a\]: Invalid value: "-y"/, 'values are validated in sorted order, as Kubernetes');
});

t.test('newRequirement validates operator arity', async (t) => {
  t.match(error(() => newRequirement('a', 'in', [])).message, /values set can't be empty/);
  t.match(error(() => newRequirement('a', '=', ['x', 'y'])).message, /exact-match compatibility requires one single value/);
  t.match(error(() => newRequirement('a', 'exists', ['x'])).message, /values set must be empty/);
  t.match(error(() => newRequirement('a', 'gt', ['1', '2'])).message, /exactly one value is required/);
  t.match(error(() => newRequirement('a', 'bogus' as never, [])).message, /Unsupported value: "bogus"/);
  t.match(error(() => newRequirement('-a', 'in', [])).message, /^\[key: Invalid value.*, values: Invalid value/, 'several problems at once');
});

// ---------------------------------------------------------------------------
// label matching

t.test('label selectors: matching', async (t) => {
  const labels = { app: 'web', env: 'prod', n: '7', empty: '' };
  const m = (s: string, ls: Record<string, string> | undefined = labels) => matchesLabels(parseLabelSelector(s), ls);
  t.ok(m(''), 'empty selector matches everything');
  t.ok(m('app=web'));
  t.ok(m('app==web'));
  t.notOk(m('app=api'));
  t.notOk(m('missing=x'));
  t.ok(m('app!=api'));
  t.ok(m('missing!=x'), '!= matches when the label is absent');
  t.notOk(m('app!=web'));
  t.ok(m('env in (prod,staging)'));
  t.notOk(m('env in (dev)'));
  t.notOk(m('missing in (x)'));
  t.ok(m('env notin (dev)'));
  t.ok(m('missing notin (x)'), 'notin matches when the label is absent');
  t.notOk(m('env notin (prod)'));
  t.ok(m('app'));
  t.notOk(m('missing'));
  t.ok(m('!missing'));
  t.notOk(m('!app'));
  t.ok(m('empty='), 'empty value equals an empty label');
  t.notOk(m('missing='), 'but not an absent one');
  t.ok(m('empty in ()'));
  t.ok(m('n>5'));
  t.ok(m('n<8'));
  t.notOk(m('n>7'));
  t.notOk(m('app>1'), 'non-integer label values never satisfy gt/lt');
  t.notOk(m('missing<100'));
  t.ok(m('app=web,env in (prod),!legacy,n>1'), 'all requirements must hold');
  t.notOk(m('app=web,env=dev'));
  t.ok(m('!a', undefined), 'undefined labels = no labels');
  t.notOk(m('a', undefined));
});

// ---------------------------------------------------------------------------
// LabelSelector objects

t.test('LabelSelector: requirements and canonical string (Scale status.selector)', async (t) => {
  const sel = {
    matchLabels: { tier: 'front', app: 'web' },
    matchExpressions: [
      { key: 'env', operator: 'In', values: ['staging', 'prod'] },
      { key: 'legacy', operator: 'DoesNotExist' },
      { key: 'zone', operator: 'NotIn', values: ['b'] },
      { key: 'gpu', operator: 'Exists' },
    ],
  };
  t.same(labelSelectorToRequirements(sel), [
    req('app', '=', ['web']),
    req('env', 'in', ['staging', 'prod']),
    req('gpu', 'exists'),
    req('legacy', '!'),
    req('tier', '=', ['front']),
    req('zone', 'notin', ['b']),
  ]);
  t.equal(labelSelectorToString(sel), 'app=web,env in (prod,staging),gpu,!legacy,tier=front,zone notin (b)');
  t.equal(labelSelectorToString({ matchLabels: { app: 'nginx' } }), 'app=nginx');
  t.equal(labelSelectorToString({}), '');
  t.equal(labelSelectorToString(undefined), '');
  t.same(labelSelectorToRequirements({}), [], '{} selects everything');
  t.equal(labelSelectorToRequirements(null), null, 'null selects nothing');
  // The canonical string parses back to the same selector.
  t.same(parseLabelSelector(labelSelectorToString(sel)).map((r) => ({ ...r, values: [...r.values].sort() })),
    labelSelectorToRequirements(sel)!.map((r) => ({ ...r, values: [...r.values].sort() })));
});

t.test('LabelSelector: matching and errors', async (t) => {
  const sel = { matchLabels: { app: 'web' }, matchExpressions: [{ key: 'env', operator: 'NotIn', values: ['dev'] }] };
  t.ok(labelSelectorMatches(sel, { app: 'web', env: 'prod' }));
  t.ok(labelSelectorMatches(sel, { app: 'web' }));
  t.notOk(labelSelectorMatches(sel, { app: 'web', env: 'dev' }));
  t.notOk(labelSelectorMatches(sel, {}));
  t.ok(labelSelectorMatches({}, { anything: 'x' }));
  t.notOk(labelSelectorMatches(null, { anything: 'x' }));
  t.notOk(labelSelectorMatches(undefined, {}));
  t.equal(error(() => labelSelectorToRequirements({ matchExpressions: [{ key: 'a', operator: 'Gt', values: ['1'] }] })).message,
    '"Gt" is not a valid label selector operator');
  t.match(error(() => labelSelectorToRequirements({ matchExpressions: [{ key: 'a', operator: 'In', values: [] }] })).message,
    /values set can't be empty/);
  t.match(error(() => labelSelectorToRequirements({ matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }] })).message,
    /values set must be empty/);
  t.match(error(() => labelSelectorToRequirements({ matchLabels: { 'bad key': 'v' } })).message, /key: Invalid value: "bad key"/);
});

// ---------------------------------------------------------------------------
// field selectors

t.test('field selectors: parsing', async (t) => {
  t.same(parseFieldSelector('metadata.name=web'), [{ path: 'metadata.name', op: '=', value: 'web' }]);
  t.same(parseFieldSelector('metadata.name==web'), [{ path: 'metadata.name', op: '=', value: 'web' }], '== is =');
  t.same(parseFieldSelector('spec.nodeName='), [{ path: 'spec.nodeName', op: '=', value: '' }]);
  t.same(parseFieldSelector('status.phase=Running,metadata.namespace!=kube-system'), [
    { path: 'metadata.namespace', op: '!=', value: 'kube-system' },
    { path: 'status.phase', op: '=', value: 'Running' },
  ], 'terms sorted');
  t.same(parseFieldSelector('involvedObject.name=a\\,b\\=c\\\\d'), [{ path: 'involvedObject.name', op: '=', value: 'a,b=c\\d' }], 'escapes');
  t.same(parseFieldSelector('a=1,,b=2'), [{ path: 'a', op: '=', value: '1' }, { path: 'b', op: '=', value: '2' }], 'empty terms skipped');
  t.same(parseFieldSelector(''), []);
});

t.test('field selectors: errors', async (t) => {
  const cases: [string, string][] = [
    ['metadata.name', "invalid selector: 'metadata.name'; can't understand 'metadata.name'"],
    ['a=x,b', "invalid selector: 'a=x,b'; can't understand 'b'"],
    ['a=b=c', 'invalid field selector: unescaped character in value: ='],
    ['a=\\x', 'invalid field selector: invalid escape sequence: \\x'],
    ['a=b\\', 'invalid field selector: invalid escape sequence: \\'],
    ['a<5', "invalid selector: 'a<5'; can't understand 'a<5'"],
  ];
  for (const [input, msg] of cases) {
    const e = error(() => parseFieldSelector(input));
    t.equal(e.message, msg, JSON.stringify(input));
    t.equal(e.code, 400);
  }
  const allowed = ['metadata.name', 'metadata.namespace', 'spec.nodeName'];
  t.equal(parseFieldSelector('spec.nodeName=n1', { allowedFields: allowed }).length, 1);
  t.equal(error(() => parseFieldSelector('spec.host=n1', { allowedFields: allowed })).message, 'field label not supported: spec.host');
});

t.test('field selectors: matching generic dotted paths', async (t) => {
  const pod = {
    metadata: { name: 'p1', namespace: 'default' },
    spec: { nodeName: 'n1', hostNetwork: true, priority: 5 },
    status: { phase: 'Running' },
  };
  const m = (s: string, o: unknown = pod) => matchesFields(parseFieldSelector(s), o);
  t.ok(m(''));
  t.ok(m('metadata.name=p1'));
  t.notOk(m('metadata.name=p2'));
  t.ok(m('metadata.name!=p2'));
  t.ok(m('metadata.namespace=default,status.phase=Running'));
  t.notOk(m('metadata.namespace=default,status.phase=Pending'));
  t.ok(m('spec.nodeName=n1'));
  t.notOk(m('spec.nodeName='));
  t.ok(m('spec.nodeName=', { metadata: { name: 'unscheduled' }, spec: {} }), 'absent reads as ""');
  t.ok(m('spec.nodeName!=', pod), 'scheduled pods');
  t.ok(m('spec.hostNetwork=true'), 'booleans as text');
  t.ok(m('spec.priority=5'), 'numbers as text');
  t.ok(m('metadata.name.deeper='), 'a path through a scalar reads as ""');
  t.ok(m('involvedObject.name=web', { involvedObject: { kind: 'Pod', name: 'web' } }));
  t.equal(fieldValue(pod, 'status.phase'), 'Running');
  t.equal(fieldValue(pod, 'status.missing'), '');
  t.equal(fieldValue(null, 'a'), '');
});

t.test('field selectors: string form and escaping', async (t) => {
  t.equal(escapeFieldValue('a,b=c\\'), 'a\\,b\\=c\\\\');
  const reqs = parseFieldSelector('spec.nodeName==n1,metadata.name!=a\\,b');
  t.equal(fieldSelectorToString(reqs), 'metadata.name!=a\\,b,spec.nodeName=n1');
  t.same(parseFieldSelector(fieldSelectorToString(reqs)), reqs);
});
