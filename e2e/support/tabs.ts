/** Open N tabs, each in its own browser context (separate storage: separate identities), as nodes. */
import type { Browser, BrowserContext, Page } from '@playwright/test';
import { webrtcPermissions } from '../../scripts/chromium.ts';

/**
 * Records every RTCPeerConnection so a test can ask getStats() how the connection really flows. Plain script
 * text, so no transpiler (Playwright's or tsx's) can add helpers the page does not have.
 */
const recordPeerConnections = `
  (() => {
    const Native = window.RTCPeerConnection;
    const all = [];
    window.__peerConnections = all;
    window.RTCPeerConnection = class extends Native {
      constructor(config) { super(config); all.push(this); }
    };
  })();
`;

export interface Tab {
  context: BrowserContext;
  page: Page;
  errors: string[];
  /** The tab's last console lines (at most CONSOLE_LINES), for a failing test to print. */
  console: string[];
}

const CONSOLE_LINES = 300;

export async function openTabs(
  browser: Browser,
  count: number,
  relayHealthUrl: string,
  baseURL?: string,
  /** Extra URL parameters per tab (index k); tabs are clients unless told otherwise, so they load no model. */
  query: (k: number) => string = () => 'role=client',
): Promise<Tab[]> {
  const tabs: Tab[] = [];
  for (let k = 0; k < count; k++) {
    const context = await browser.newContext({
      permissions: webrtcPermissions,
      ...(baseURL ? { baseURL } : {}),
    });
    await context.addInitScript({ content: recordPeerConnections });
    const page = await context.newPage();
    const errors: string[] = [];
    const lines: string[] = [];
    page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}\n${e.stack ?? ''}`));
    page.on('console', (m) => {
      const line = `[tab ${k}] ${new Date().toISOString()} ${m.type()}: ${m.text()}`;
      if (process.env['TAB_CONSOLE']) console.log(line);
      lines.push(line);
      if (lines.length > CONSOLE_LINES) lines.shift();
    });
    tabs.push({ context, page, errors, console: lines });
  }
  // Open them at once, as people (and the benchmark) do.
  await Promise.all(
    tabs.map((t, k) => t.page.goto(`/?autostart=1&relay=${encodeURIComponent(relayHealthUrl)}&${query(k)}`)),
  );
  return tabs;
}

/** The candidate types of every connected peer connection's selected pair, e.g. ["host/host", ...]. */
export function selectedPairTypes(page: Page): Promise<string[]> {
  return page.evaluate(async () => {
    const pcs = (window as unknown as { __peerConnections: RTCPeerConnection[] }).__peerConnections;
    const out: string[] = [];
    for (const pc of pcs) {
      if (pc.connectionState !== 'connected') continue;
      const stats = await pc.getStats();
      const byId = new Map<string, Record<string, unknown>>();
      stats.forEach((s: Record<string, unknown>) => byId.set(s['id'] as string, s));
      for (const s of byId.values()) {
        if (s['type'] !== 'transport' || !s['selectedCandidatePairId']) continue;
        const pair = byId.get(s['selectedCandidatePairId'] as string)!;
        const local = byId.get(pair['localCandidateId'] as string)!;
        const remote = byId.get(pair['remoteCandidateId'] as string)!;
        out.push(`${local['candidateType']}/${remote['candidateType']}`);
      }
    }
    return out;
  });
}

/**
 * Wait until every tab holds a UID (the model loads first, then a proof of work, a faucet claim and a replay: five
 * tabs loading at once on 2 cores took 100 s to serve). Eventually, not by a deadline: on a timeout it fails naming each tab still without one, with its registration state and last console lines.
 */
export async function expectUids(tabs: readonly Pick<Tab, 'page' | 'console'>[], timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const uids = await Promise.all(tabs.map((t) => t.page.evaluate(() => window.webtensor.ledger.uid)));
    if (uids.every((u) => u !== null)) return;
    if (Date.now() > deadline) {
      const report = await Promise.all(
        tabs.map(async (t, k) =>
          uids[k] !== null
            ? ''
            : `tab ${k} has no UID after ${timeoutMs / 1000} s; registration: ${JSON.stringify(
                await t.page.evaluate(() => window.webtensor.ledger.registration),
              )}\n${t.console.slice(-40).join('\n')}`,
        ),
      );
      throw new Error(report.filter(Boolean).join('\n\n'));
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
