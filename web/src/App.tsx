import { ConsensusLab } from './ConsensusLab.tsx';

/** The first screen: what webtensor is, and what works today. */
export function App() {
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
          Working today: the Yuma consensus engine, bit-exact with subtensor, running in a Web Worker below. The relay,
          miners and validators are being built next.
        </p>
      </header>
      <ConsensusLab />
    </main>
  );
}
