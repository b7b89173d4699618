import { ConsensusLab } from './ConsensusLab.tsx';
import { MinerPanel } from './MinerPanel.tsx';
import { LedgerPanel } from './LedgerPanel.tsx';
import { NetworkPanel } from './NetworkPanel.tsx';
import type { NodeRuntime } from './node/runtime.ts';

/** The first screen: what webtensor is, this tab as a node, and the consensus engine. */
export function App({ runtime, configError }: { runtime: NodeRuntime | null; configError: string | null }) {
  return (
    <main>
      <header className="hero">
        <h1>webtensor</h1>
        <p className="lead">
          A peer-to-peer inference network that runs in browser tabs. Every tab is a node: miners run a language model
          and answer other nodes over direct WebRTC; validators check their answers and publish weights; Yuma consensus,
          the mechanism of Bittensor&apos;s subtensor, turns those weights into incentive, dividends and emission, bit
          for bit the same on every node.
        </p>
        <p className="status">
          Press Start: this tab loads a model, registers on the network by proof of work and answers other tabs&apos;
          requests over direct WebRTC. Validators check the answers and commit weights; every tab replays the signed
          ledger and runs the same Yuma epochs, bit for bit.
        </p>
      </header>
      {configError && (
        <p role="alert" className="error card">
          {configError}
        </p>
      )}
      {runtime && <NetworkPanel runtime={runtime} />}
      {runtime && <MinerPanel runtime={runtime} />}
      {runtime && <LedgerPanel runtime={runtime} />}
      <ConsensusLab />
    </main>
  );
}
