/**
 * The tab's node, given to every page through React context, and the hook that subscribes a page to one of
 * the node's typed stores. Pages render stores and call intents; they never reach into storage or the network.
 */
import { createContext, useContext, useSyncExternalStore } from 'react';
import type { WebtensorNode } from '../../../core/node.ts';
import type { Roles } from '../../../core/roles.ts';
import type { ReadableStore } from '../../../core/store.ts';

export interface TabNode {
  node: WebtensorNode;
  roles: Roles;
}

export const NodeContext = createContext<{ tab: TabNode | null; configError: string | null }>({
  tab: null,
  configError: null,
});

/** The tab's node and its roles, or null when the URL's settings were refused. */
export function useTab(): TabNode | null {
  return useContext(NodeContext).tab;
}

const never = () => () => {};

/** The current value of `store`, re-rendering on every change; `fallback` while there is no store (yet). */
export function useStore<T>(store: ReadableStore<T> | null | undefined, fallback: T): T {
  return useSyncExternalStore(store ? (notify) => store.subscribe(notify) : never, () =>
    store ? store.get() : fallback,
  );
}
