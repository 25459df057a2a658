// Unit tests of the pure Raft core (raft/core.ts) driven by hand: no I/O.
import t from 'tap';
import { RaftCore } from '../raft/core.ts';
import { EntryType, type Message, MessageType, Role, emptyMessage } from '../raft/types.ts';

/** A three-member cluster of cores wired by hand: persist is a no-op, messages are delivered until quiet. */
function cluster(ids = ['1', '2', '3']) {
  let seed = 1;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const cores = new Map(ids.map((id) => [id, new RaftCore(
    { id, electionTick: 10, heartbeatTick: 1, random },
    { hardState: { term: 0, vote: '', commit: 0 }, conf: { voters: ids, learners: [] }, entries: [], applied: 0 },
  )]));
  const settle = () => {
    for (let round = 0; round < 100; round++) {
      const out: Message[] = [];
      for (const c of cores.values()) {
        while (c.hasReady()) {
          const rd = c.ready();
          out.push(...rd.messages);
          c.advance(rd);
        }
      }
      if (!out.length) return;
      for (const m of out) cores.get(m.to)?.step(m);
    }
  };
  return { cores, settle };
}

function prop(from: string, to: string, data: string): Message {
  const m = emptyMessage(MessageType.Prop, from, to, 0);
  m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: Buffer.from(data) }];
  return m;
}

t.test('a Prop from a non-member is dropped, by the leader and by a follower', async (t) => {
  const { cores, settle } = cluster();
  settle();
  cores.get('1')!.campaign();
  settle();
  const leader = cores.get('1')!;
  t.equal(leader.role, Role.Leader);
  const last = leader.status().lastIndex;

  leader.step(prop('9', '1', 'forged'));
  t.equal(leader.hasReady(), false, 'the leader has nothing to do');
  t.equal(leader.status().lastIndex, last, 'nothing appended for a stranger');
  leader.step(prop('1', '1', 'claims to be the leader itself'));
  t.equal(leader.status().lastIndex, last, 'nothing appended for a Prop claiming to come from the leader');

  const follower = cores.get('2')!;
  follower.step(prop('9', '2', 'forged via a follower'));
  settle();
  t.equal(leader.status().lastIndex, last, 'a follower does not forward it under its own name');
  t.equal(leader.status().droppedProposals, 2, 'the leader counts what it dropped');
  t.equal(follower.status().droppedProposals, 1, 'the follower counts what it dropped');

  // A member's forwarded proposal still goes through.
  follower.step(prop('3', '2', 'from member 3'));
  follower.propose(Buffer.from('from member 2'));
  settle();
  t.equal(leader.status().lastIndex, last + 2, 'proposals from members are appended');
  t.equal(leader.status().commit, last + 2, 'and committed');
});

t.test('a member whose hard state says noVoteUntil does not campaign, and votes only for a log as good as the lost one', async (t) => {
  let seed = 7;
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const conf = ['1', '2', '3'];
  // Restarting from a snapshot at 3 that holds the membership; the entries after it were lost.
  const snapshot = { meta: { index: 3, term: 1, conf: { voters: conf, learners: [] } }, data: new Uint8Array(0) };
  const core = new RaftCore(
    { id: '2', electionTick: 10, heartbeatTick: 1, random },
    { hardState: { term: 1, vote: '', commit: 3, noVoteUntil: 5, noVoteTerm: 1 }, conf: { voters: [], learners: [] }, snapshot, entries: [], applied: 3 },
  );
  for (let i = 0; i < 100; i++) core.tick();
  const drain = () => {
    const out: Message[] = [];
    while (core.hasReady()) {
      const rd = core.ready();
      out.push(...rd.messages);
      core.advance(rd);
    }
    return out;
  };
  t.same(drain().filter((m) => m.type === MessageType.PreVote || m.type === MessageType.Vote), [], 'no campaign');
  t.equal(core.status().noVoteUntil, 5);

  // Entries 4 and 5 (term <= 1) were lost: a candidate ending at 4/1 is ahead
  // of the log this member has, but may lack entry 5, which it acknowledged.
  const vote = emptyMessage(MessageType.Vote, '3', '2', 2);
  vote.index = 4;
  vote.logTerm = 1;
  core.step(vote);
  t.ok(drain().find((m) => m.type === MessageType.VoteResp)!.reject, 'a candidate that may lack a lost entry is refused');
  const pre = emptyMessage(MessageType.PreVote, '1', '2', 3);
  pre.index = 5;
  pre.logTerm = 1;
  core.step(pre);
  t.notOk(drain().find((m) => m.type === MessageType.PreVoteResp)!.reject, 'one at least as up to date as the lost log is not');
  t.equal(core.status().noVoteUntil, 5, 'the marker stays');

  // The leader of term 2 brings the log to 5: the marker clears, in the same Ready as the entries.
  const app = emptyMessage(MessageType.App, '3', '2', 2);
  app.index = 3;
  app.logTerm = 1;
  app.entries = [4, 5].map((i) => ({ term: 2, index: i, type: EntryType.Normal, data: Buffer.alloc(0) }));
  core.step(app);
  const rd = core.ready();
  t.same(rd.entries.map((e) => e.index), [4, 5]);
  t.equal(rd.hardState?.noVoteUntil, undefined, 'the Ready persisting them clears the marker');
  t.ok(rd.hardState, 'with a hard state write');
  core.advance(rd);
  t.equal(core.status().noVoteUntil, 0);
  for (let i = 0; i < 10; i++) core.tick(); // out of the leader's lease
  drain();
  const vote3 = emptyMessage(MessageType.Vote, '1', '2', 3);
  vote3.index = 5;
  vote3.logTerm = 2;
  core.step(vote3);
  t.notOk(drain().find((m) => m.type === MessageType.VoteResp)!.reject, 'then it votes');
});

t.test('a follower that lost acknowledged entries is repaired by the next heartbeat, with nothing new to send', async (t) => {
  const { cores, settle } = cluster();
  settle();
  cores.get('1')!.campaign();
  settle();
  const leader = cores.get('1')!;
  for (let i = 0; i < 3; i++) leader.propose(Buffer.from(`w${i}`));
  settle();
  const last = leader.status().lastIndex;
  const f = cores.get('2')!;
  t.equal(f.status().lastIndex, last);
  // Member 2 restarts having lost its last two entries (as storage reports them).
  const kept: import('../raft/types.ts').Entry[] = [];
  for (let i = 1; i <= last - 2; i++) kept.push({ ...(f.log as unknown as { entries: import('../raft/types.ts').Entry[] }).entries[i - 1]! });
  const restarted = new RaftCore(
    { id: '2', electionTick: 10, heartbeatTick: 1, random: () => 0.5 },
    {
      hardState: { term: f.status().term, vote: f.status().vote, commit: last - 2, noVoteUntil: last, noVoteTerm: f.status().term },
      conf: { voters: [], learners: [] }, entries: kept, applied: 0,
    },
  );
  cores.set('2', restarted);
  t.equal(restarted.status().noVoteUntil, last);
  leader.tick(); // a heartbeat round
  settle();
  t.equal(restarted.status().lastIndex, last, 'the leader resent the lost entries');
  t.equal(restarted.status().noVoteUntil, 0, 'and the member may vote again');
});
