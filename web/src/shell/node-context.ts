/** The tab's node, shared with every page through React context, and a hook that re-renders on its events. */
import { createContext, useContext, useSyncExternalStore } from 'react';
import type { NodeRuntime, NodeState } from '../node/runtime.ts';

export const NodeContext = createContext<{ runtime: NodeRuntime | null; configError: string | null }>({
  runtime: null,
  configError: null,
});

export function useRuntime(): NodeRuntime | null {
  return useContext(NodeContext).runtime;
}

const noop = () => () => {};

/** The node's state, updated on its 'change' events (no polling). */
export function useNodeState(): NodeState | null {
  const runtime = useRuntime();
  return useSyncExternalStore(
    runtime
      ? (notify) => {
          runtime.addEventListener('change', notify);
          return () => runtime.removeEventListener('change', notify);
        }
      : noop,
    () => runtime?.state ?? null,
  );
}
