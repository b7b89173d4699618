import { ConsensusLab } from '../ConsensusLab.tsx';

/** The Consensus lab (`/lab`): one Yuma epoch in the consensus worker, on a built-in or pasted case. Needs no network. */
export function LabPage() {
  return (
    <>
      <section className="hero" aria-labelledby="lab-page-title">
        <h1 id="lab-page-title">Consensus lab</h1>
        <p className="lead">
          Run one epoch of Yuma consensus, bit for bit as subtensor computes it, in this tab&apos;s consensus worker.
          Nothing here touches the network.
        </p>
      </section>
      <ConsensusLab />
    </>
  );
}
