import type { Roles } from '../../core/roles.ts';
import type { DevicePreference } from '../../shared/inference/engine.ts';
import { useStore } from './shell/node-context.ts';

/** The device a miner should load its model on: automatic (WebGPU on a real GPU, else WASM) or forced. */
export function DeviceSelect({ roles }: { roles: Roles }) {
  const { device } = useStore(roles.settings, roles.settings.get());
  return (
    <label>
      Device{' '}
      <select value={device} onChange={(e) => roles.setDevice(e.target.value as DevicePreference)}>
        <option value="auto">automatic</option>
        <option value="wasm">WASM (CPU)</option>
        <option value="webgpu">WebGPU</option>
      </select>
    </label>
  );
}
