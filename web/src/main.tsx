import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.tsx';
import { installAutomation } from './automation.ts';
import { ConfigError, readNodeConfig } from './node/config.ts';
import { NodeRuntime } from './node/runtime.ts';
import './styles.css';

let runtime: NodeRuntime | null = null;
let configError: string | null = null;
try {
  const config = readNodeConfig(location.search, location);
  runtime = new NodeRuntime(config);
  if (config.autostart) void runtime.startRole();
} catch (err) {
  if (!(err instanceof ConfigError)) throw err;
  configError = err.message;
}

installAutomation(runtime);
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App runtime={runtime} configError={configError} />
  </StrictMode>,
);
