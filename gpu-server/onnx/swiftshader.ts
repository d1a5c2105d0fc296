/**
 * SwiftShader: a conformant CPU implementation of Vulkan that Debian's chromium package ships. With
 * it, onnxruntime's WebGPU provider runs the same WGSL kernels a GPU would, on a machine without
 * one (slowly, and without fp16: see docs/webgpu.md). The tests and the bench point Vulkan at it.
 */
import { existsSync } from 'node:fs';
import { systemDetection } from './session.ts';

/** Vulkan's driver manifest for chromium's SwiftShader (Debian's `chromium` package). */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/**
 * Points this process's Vulkan loader at SwiftShader (unless VK_ICD_FILENAMES already names a
 * driver) before the first WebGPU session; returns why it cannot, or undefined when it did.
 */
export function useSwiftShader(env: NodeJS.ProcessEnv = process.env, icd = SWIFTSHADER_ICD, vulkanLoader: () => boolean = systemDetection.webgpuPossible): string | undefined {
  if (!existsSync(icd)) return `no SwiftShader at ${icd} (Debian's chromium package ships it: bash scripts/install-test-deps.sh)`;
  if (!vulkanLoader()) return 'no Vulkan loader (libvulkan.so.1; Debian: apt-get install libvulkan1, which scripts/install-test-deps.sh does)';
  env.VK_ICD_FILENAMES ??= icd;
  return undefined;
}
