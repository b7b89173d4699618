import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createBrowserRouter, RouterProvider } from 'react-router';
import { createBrowserPlatform } from '../../core/browser/platform.ts';
import { WebtensorNode } from '../../core/node.ts';
import { Roles } from '../../core/roles.ts';
import { installAutomation } from './automation.ts';
import { ConfigError, readNodeConfig } from './url-config.ts';
import { AskPage } from './pages/AskPage.tsx';
import { DashboardPage } from './pages/DashboardPage.tsx';
import { JobsPage } from './pages/JobsPage.tsx';
import { LabPage } from './pages/LabPage.tsx';
import { MinePage } from './pages/MinePage.tsx';
import { ValidatePage } from './pages/ValidatePage.tsx';
import { WalletPage } from './pages/WalletPage.tsx';
import { Layout } from './shell/Layout.tsx';
import { NodeContext, type TabNode } from './shell/node-context.ts';
import './styles.css';

// One node per tab, whatever page is shown. /validate makes Start (and autostart) a validator unless ?role= says;
// /dashboard, /ask, /wallet and /jobs join the network as a client at once, to watch, ask and pay (no model, no
// registration).
let tab: TabNode | null = null;
let configError: string | null = null;
try {
  const params = new URLSearchParams(location.search);
  const watchPage = /^\/(dashboard|ask|wallet|jobs)/.test(location.pathname);
  if (!params.has('role') && location.pathname.startsWith('/validate')) params.set('role', 'validator');
  if (!params.has('role') && watchPage) params.set('role', 'client');
  const config = readNodeConfig(`?${params}`, location);
  const node = new WebtensorNode(config, createBrowserPlatform({ iceServers: config.iceServers }));
  tab = { node, roles: new Roles(node) };
  if (config.autostart) void tab.roles.startRole().catch(() => {});
  else if (watchPage) void node.start().catch(() => {});
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  configError = err.message;
}

installAutomation(tab);

const router = createBrowserRouter([
  {
    element: <Layout />,
    children: [
      { path: '/', element: <MinePage /> },
      { path: '/validate', element: <ValidatePage /> },
      { path: '/dashboard', element: <DashboardPage /> },
      { path: '/ask', element: <AskPage /> },
      { path: '/wallet', element: <WalletPage /> },
      { path: '/jobs', element: <JobsPage /> },
      { path: '/lab', element: <LabPage /> },
      { path: '*', element: <MinePage /> },
    ],
  },
]);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <NodeContext value={{ tab, configError }}>
      <RouterProvider router={router} />
    </NodeContext>
  </StrictMode>,
);
