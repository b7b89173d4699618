import type { NodeRuntime } from './node/runtime.ts';
import type { DevicePreference } from '../../worker/device.ts';

/** The device a miner should load its model on: automatic (WebGPU on a real GPU, else WASM) or forced. */
export function DeviceSelect({ runtime }: { runtime: NodeRuntime }) {
  return (
    <label>
      Device{' '}
      <select
        value={runtime.devicePreference}
        onChange={(e) => runtime.setDevicePreference(e.target.value as DevicePreference)}
      >
        <option value="auto">automatic</option>
        <option value="wasm">WASM (CPU)</option>
        <option value="webgpu">WebGPU</option>
      </select>
    </label>
  );
}
