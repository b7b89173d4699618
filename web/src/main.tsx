import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createBrowserRouter, RouterProvider } from 'react-router';
import { installAutomation } from './automation.ts';
import { ConfigError, readNodeConfig } from './node/config.ts';
import { NodeRuntime } from './node/runtime.ts';
import { AskPage } from './pages/AskPage.tsx';
import { DashboardPage } from './pages/DashboardPage.tsx';
import { MinePage } from './pages/MinePage.tsx';
import { ValidatePage } from './pages/ValidatePage.tsx';
import { Layout } from './shell/Layout.tsx';
import { NodeContext } from './shell/node-context.ts';
import './styles.css';

// One node per tab, whatever page is shown. /validate makes Start (and autostart) a validator unless ?role= says.
let runtime: NodeRuntime | null = null;
let configError: string | null = null;
try {
  const params = new URLSearchParams(location.search);
  if (!params.has('role') && location.pathname.startsWith('/validate')) params.set('role', 'validator');
  if (!params.has('role') && /^\/(dashboard|ask)/.test(location.pathname)) params.set('role', 'client');
  const config = readNodeConfig(`?${params}`, location);
  runtime = new NodeRuntime(config);
  if (config.autostart) void runtime.startRole().catch(() => {});
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  configError = err.message;
}

installAutomation(runtime);

const router = createBrowserRouter([
  {
    element: <Layout />,
    children: [
      { path: '/', element: <MinePage /> },
      { path: '/validate', element: <ValidatePage /> },
      { path: '/dashboard', element: <DashboardPage /> },
      { path: '/ask', element: <AskPage /> },
      { path: '*', element: <MinePage /> },
    ],
  },
]);

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <NodeContext value={{ runtime, configError }}>
      <RouterProvider router={router} />
    </NodeContext>
  </StrictMode>,
);
