/**
 * THREATS.md findings 1-3 and 6 played against real tabs by a real adversary: a Node process's libp2p node built from
 * the project's own code (core/ on the Node platform), speaking only the wire protocol. It signs what a modified
 * client would (a backdated double spend, a backdated commit of copied weights, a backdated registration),
 * gossips it, and serves it to anyone who syncs; then, a voter, it votes twice on one epoch. Then a late tab joins.
 * The first payment stands, the copy earns nothing, no honest UID is evicted, no tab keeps both votes, and every
 * tab, the late one included, reports the same final checkpoints.
 */
import '../shared/polyfills.ts';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { epochOf } from '../shared/ledger/config.ts';
import { testProfile } from '../shared/ledger/profiles.ts';
import { recordId } from '../shared/ledger/records.ts';
import { Adversary } from './support/adversary.ts';
import { openTabs, expectUids } from './support/tabs.ts';

const dir = mkdtempSync(join(tmpdir(), 'webtensor-attack-'));
const networkFile = join(dir, 'network.json');
// A full subnet (3 UIDs: miner, honest validator, adversary) so a registration would evict someone, and a short
// immunity so the miner could be evicted if a backdated registration counted.
const network = testProfile(Math.ceil(Date.now() / 1000) * 1000 + 5000);
network.subnets[0] = { ...network.subnets[0]!, maxUids: 3, maxValidators: 2, immunityPeriod: 10 };
writeFileSync(networkFile, JSON.stringify(network));
const relay = new RelayProcess(9884, 9885, undefined, ['--network', networkFile]);
const adversary = new Adversary(join(dir, 'adversary'));

test.beforeAll(() => relay.start());
test.afterAll(async () => {
  await adversary.stop();
  await relay.stop();
  rmSync(dir, { recursive: true, force: true });
});
test.setTimeout(300_000);

const TAO = 1_000_000_000n;
const finals = (page: Page) =>
  page.evaluate(() =>
    window.webtensor.ledger.epochs.filter((e) => e.final).map((e) => `${e.epoch}:${e.recordsRoot}:${e.stateRoot}`),
  );

test('backdating, copying and evicting by a modified client fail against tabs, and a late tab agrees', async ({
  browser,
}) => {
  const tabs = await openTabs(browser, 2, relay.healthUrl, undefined, (k) =>
    k === 0 ? 'role=miner' : 'role=validator',
  );
  const [miner, validator] = tabs.map((t) => t.page) as [Page, Page];
  await expectUids(tabs);
  const [m, v] = (await Promise.all([miner, validator].map((p) => p.evaluate(() => window.webtensor.peerId!)))) as [
    string,
    string,
  ];
  await validator.evaluate((id) => window.webtensor.ledger.faucetStake(id, '2000000000000'), v);

  // The adversary joins as a validator with a quarter of the honest one's stake, and exactly 100 rao to spend.
  await adversary.start(relay.healthUrl);
  const a = adversary.peerId;
  await adversary.registerAsValidator(500n * TAO, 100n);
  const uids = async (p: Page) =>
    p.evaluate(() => window.webtensor.ledger.summaries.at(-1)?.uids.map((u) => u.hotkey) ?? []);
  await expect.poll(() => uids(validator), { timeout: 90_000 }).toEqual(expect.arrayContaining([m, v, a]));
  const honestUids = Object.fromEntries((await uids(validator)).map((h, uid) => [h, uid]));

  // Finding 1. Pay the miner 100 rao; once that epoch is final, sign the same sequence number again, dated a block
  // earlier, paying someone else the same 100 rao.
  // (The miner holds what its registration left of the faucet's claim: the payment adds exactly 100.)
  const minerBefore = BigInt(await miner.evaluate((id) => window.webtensor.ledger.balance(id), m));
  const paid = (minerBefore + 100n).toString();
  const payment = await adversary.publish('transfer', { to: m, amount: '100' });
  await expect
    .poll(() => miner.evaluate((id) => window.webtensor.ledger.balance(id), m), { timeout: 30_000 })
    .toBe(paid);
  await adversary.waitFinal(epochOf(network, payment.block), 120_000);

  const y = await adversary.newKey();
  await adversary.inject(await adversary.sign('transfer', { to: y, amount: '100' }, payment.seq, payment.block - 1));

  // Finding 6. Two different votes on one epoch it was a voter of (next in its chain, dated now): the replay would
  // count one, so no tab stores the other (nor gives it a place in the adversary's chain).
  const doubled = await adversary.doubleVote(payment.seq + 1);
  for (const vote of doubled.votes) await adversary.inject(vote);
  const voteIds = doubled.votes.map((r) => recordId(r));
  const votesHeld = (p: Page) => p.evaluate((ids) => window.webtensor.ledger.held(ids), voteIds);
  for (const p of [miner, validator])
    await expect.poll(async () => (await votesHeld(p)).length, { timeout: 30_000 }).toBe(1);

  // Finding 3. A fresh key draws the burn from the faucet and registers, both dated in a final epoch, to take a
  // UID of the full subnet after the fact.
  const evictor = await adversary.backdatedRegistration(adversary.finalThrough() - 3);
  for (const record of evictor.records) await adversary.inject(record);

  // Finding 2. Wait for the honest validator's reveal, then commit a copy dated in the epoch its commit was in,
  // and reveal it.
  await expect
    .poll(() => validator.evaluate(() => JSON.stringify(window.webtensor.validator)), { timeout: 120_000 })
    .toMatch(/"revealed":\{/)
    .catch(async (err: unknown) => {
      const why = await validator.evaluate(() => ({
        refused: Object.values(window.webtensor.ledger.debug.refused()),
        epochs: window.webtensor.ledger.epochs.slice(-4),
        validator: window.webtensor.validator,
        peers: window.webtensor.peers,
        connectivity: window.webtensor.debug.connectivity(),
      }));
      console.log(`the validator never revealed: ${JSON.stringify(why)}`);
      throw err;
    });
  const reveal = await adversary.waitForReveal(v, 30_000);
  const copyEpoch = epochOf(network, reveal.block) - 1;
  const [commit, copy] = await adversary.copyWeights(
    reveal,
    copyEpoch * network.subnets[0]!.tempo + 2,
    payment.seq + 3,
  );
  await adversary.inject(commit);
  await adversary.inject(copy);

  // Let an epoch pass after the copy, then look.
  const closed = epochOf(network, copy.block) + 1;
  for (const p of [miner, validator])
    await expect
      .poll(() => p.evaluate(() => window.webtensor.ledger.summaries.at(-1)?.epoch ?? -1), { timeout: 60_000 })
      .toBeGreaterThanOrEqual(closed);
  const late = (await openTabs(browser, 1, relay.healthUrl, undefined, () => 'role=client'))[0]!;
  const pages = [miner, validator, late.page];
  await late.page.evaluate(() => window.webtensor.ready);

  for (const [k, p] of pages.entries()) {
    const tab = ['miner', 'validator', 'late tab'][k];
    // The first payment stands; the backdated one paid nobody.
    await expect
      .poll(() => p.evaluate((id) => window.webtensor.ledger.balance(id), m), { timeout: 60_000, message: tab })
      .toBe(paid);
    expect(await p.evaluate((id) => window.webtensor.ledger.balance(id), y), tab).toBe('0');
    // No honest UID moved, and the backdated registration holds none. (A late tab that joined from a checkpoint
    // has the metagraph of the first epoch it closes itself, at most one epoch later.)
    await expect.poll(() => uids(p), { timeout: 30_000, message: tab }).toContain(m);
    const now = await uids(p);
    expect(now.indexOf(m)).toBe(honestUids[m]);
    expect(now.indexOf(v)).toBe(honestUids[v]);
    expect(now).not.toContain(evictor.author);
    expect(await p.evaluate((id) => window.webtensor.ledger.balance(id), evictor.author), tab).toBe('0');
  }
  // The copier's weights never counted: no validator trust, no dividends; the honest validator earns.
  const last = await validator.evaluate(() => window.webtensor.ledger.summaries.at(-1)!);
  expect(last.uids.find((u) => u.hotkey === a)!.dividends).toBe(0);
  expect(last.uids.find((u) => u.hotkey === v)!.dividends).toBeGreaterThan(0);
  // The tabs saw the adversary's records for what they were.
  for (const p of [miner, validator])
    expect(await p.evaluate((id) => window.webtensor.refused[id] ?? 0, a)).toBeGreaterThan(0);

  // Still one vote of the two at every tab, after sync rounds with the adversary (which serves both).
  for (const p of pages) expect((await votesHeld(p)).length).toBeLessThanOrEqual(1);
  expect((await votesHeld(miner)).length).toBe(1);

  // Every tab, the late one included, reports the same final checkpoints.
  const reference = await finals(validator);
  expect(reference.length).toBeGreaterThanOrEqual(closed - 1);
  for (const p of [miner, late.page])
    await expect.poll(async () => (await finals(p)).slice(0, reference.length), { timeout: 60_000 }).toEqual(reference);
  for (const t of [...tabs, late]) expect(t.errors).toEqual([]);
  for (const t of [...tabs, late]) await t.context.close();
});
