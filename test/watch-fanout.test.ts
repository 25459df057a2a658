// Field-selector matching in watches parses each event's object once for
// all watchers (a few recent parses are shared), not once per watcher.
import t from 'tap';
import { eventFrame, parsedOnce } from '../apiserver/http/watch.ts';
import { matchesFields, parseFieldSelector } from '../api/selectors.ts';

t.test('parsedOnce shares a parse between watchers and never mixes objects up', async (t) => {
  const a = JSON.stringify({ metadata: { name: 'a', resourceVersion: '1' }, spec: { nodeName: 'n1' } });
  const b = JSON.stringify({ metadata: { name: 'b', resourceVersion: '2' }, spec: { nodeName: 'n2' } });
  const a1 = parsedOnce(a);
  t.equal(parsedOnce(a), a1, 'same text: the same parsed object');
  t.equal(parsedOnce(b).metadata?.name, 'b');
  t.equal(parsedOnce(a), a1, 'the event and its previous version alternate without re-parsing');
  // An equal text held in another string still maps to an equal object.
  t.same(parsedOnce(JSON.parse(JSON.stringify(a)) as string), a1);
  const sel = parseFieldSelector('spec.nodeName=n2');
  t.notOk(matchesFields(sel, parsedOnce(a)));
  t.ok(matchesFields(sel, parsedOnce(b)));
  for (let i = 0; i < 10; i++) parsedOnce(JSON.stringify({ metadata: { name: `x${i}` } }));
  t.equal(parsedOnce(b).metadata?.name, 'b', 'evicted entries are parsed again, correctly');
});

t.test('eventFrame encodes an event once and hands every watcher the same bytes', async (t) => {
  const a = JSON.stringify({ metadata: { name: 'a', resourceVersion: '7' }, data: { k: 'é' } });
  let made = 0;
  const text = (s: string) => () => (made++, s);
  const f1 = eventFrame('ADDED', a, text(a));
  t.equal(f1.toString('utf8'), `{"type":"ADDED","object":${a}}\n`, 'one JSON line, UTF-8');
  t.same(JSON.parse(f1.toString('utf8')), { type: 'ADDED', object: JSON.parse(a) });
  t.equal(eventFrame('ADDED', a, text(a)), f1, 'the second watcher gets the same Buffer');
  t.equal(made, 1, 'encoded once');
  const m = eventFrame('MODIFIED', a, text(a));
  t.not(m, f1, 'another event type is another frame');
  t.match(m.toString(), /^\{"type":"MODIFIED"/);
  // The object as clients see it may differ from the stored text (an opened Secret).
  const shown = eventFrame('DELETED', a, () => '{"opened":true}');
  t.equal(shown.toString(), '{"type":"DELETED","object":{"opened":true}}\n');
  // A failure to produce the text caches nothing: the next watcher tries again.
  const b = JSON.stringify({ metadata: { name: 'b' } });
  t.throws(() => eventFrame('ADDED', b, () => { throw new Error('sealed'); }), /sealed/);
  t.equal(eventFrame('ADDED', b, () => b).toString(), `{"type":"ADDED","object":${b}}\n`);
});
