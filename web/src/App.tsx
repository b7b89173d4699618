import { ConsensusLab } from './ConsensusLab.tsx';
import { MinerPanel } from './MinerPanel.tsx';
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
          Working today: tabs connect to each other directly through the relay; a tab can serve a real language model to
          the others, streaming tokens over WebRTC; and the Yuma consensus engine runs bit-exact with subtensor in a Web
          Worker. Validators and the ledger are being built next.
        </p>
      </header>
      {configError && (
        <p role="alert" className="error card">
          {configError}
        </p>
      )}
      {runtime && <NetworkPanel runtime={runtime} />}
      {runtime && <MinerPanel runtime={runtime} />}
      <ConsensusLab />
    </main>
  );
}
