import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';
import { localModels } from './scripts/vite-models.ts';

// The app lives in web/; it imports shared/ and worker/ from the repository root.
export default defineConfig({
  root: 'web',
  plugins: [react(), localModels()],
  // transformers.js and onnxruntime-web are loaded as they are (P2P/INFERENCE notes): no pre-bundling.
  optimizeDeps: { exclude: ['@huggingface/transformers', 'onnxruntime-web'] },
  build: { outDir: '../dist', emptyOutDir: true, target: 'es2022' },
  worker: { format: 'es' },
  server: { host: '127.0.0.1', port: 5173, fs: { allow: ['..'] } },
  preview: { host: '127.0.0.1', port: 4173, strictPort: true },
});
