/**
 * Which device a miner runs text generation on: WebGPU when the browser offers a hardware adapter, WASM
 * otherwise. A software adapter (SwiftShader) counts as no WebGPU: it runs 25-80x slower than WASM here
 * (../shared/notes/INFERENCE.md). The user can force either; the reason for the choice is shown to them.
 */
import type { DeviceChoice, DevicePreference } from '../shared/inference/engine.ts';

interface AdapterInfo {
  vendor?: string;
  architecture?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}
interface GpuLike {
  requestAdapter(): Promise<{ info?: AdapterInfo; isFallbackAdapter?: boolean } | null>;
}

export async function chooseDevice(preference: DevicePreference): Promise<DeviceChoice> {
  if (preference === 'wasm') return { device: 'wasm', reason: 'WASM was chosen in the settings' };
  const gpu = (navigator as { gpu?: GpuLike }).gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  const forced = preference === 'webgpu';
  if (!adapter)
    return {
      device: 'wasm',
      reason: `${forced ? 'WebGPU was chosen, but ' : ''}this browser offers no WebGPU adapter (no usable GPU), so WASM`,
    };
  const info = adapter.info ?? {};
  const name = [info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'unnamed adapter';
  const software = adapter.isFallbackAdapter === true || info.isFallbackAdapter === true || /swiftshader/i.test(name);
  if (software && !forced)
    return { device: 'wasm', reason: `the only WebGPU adapter is software (${name}), slower than WASM` };
  return { device: 'webgpu', reason: forced ? `WebGPU was chosen in the settings (${name})` : `GPU: ${name}` };
}
