// Installs node-llama-cpp (llama.cpp's prebuilt CPU binary for Node) into .cache/llamacpp/ for the
// GGUF agreement tests and `mixtune bench generate peer=llamacpp`. It is not a dependency of
// mixtune: nothing here touches package.json or node_modules.
//
// Only the CPU prebuilt package for this platform is installed: --omit=optional skips the GPU
// builds (CUDA, Vulkan: hundreds of MB), and --ignore-scripts skips node-llama-cpp's postinstall
// (which could try to download or build llama.cpp). Usage: node scripts/install-llamacpp.mjs
// [--force]; MIXTUNE_LLAMACPP_DIR overrides the folder.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

const VERSION = '3.21.1';
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = resolve(process.env.MIXTUNE_LLAMACPP_DIR ?? join(root, '.cache', 'llamacpp'));
const force = process.argv.includes('--force');

const prebuilt = {
  'linux-x64': 'linux-x64',
  'linux-arm64': 'linux-arm64',
  'darwin-arm64': 'mac-arm64-metal',
  'darwin-x64': 'mac-x64',
  'win32-x64': 'win-x64',
  'win32-arm64': 'win-arm64',
}[`${process.platform}-${process.arch}`];
if (!prebuilt) {
  console.error(`install-llamacpp: no node-llama-cpp CPU prebuilt for ${process.platform}-${process.arch}`);
  process.exit(1);
}
const pkgs = { 'node-llama-cpp': VERSION, [`@node-llama-cpp/${prebuilt}`]: VERSION };

const installed = (name) => {
  const p = join(dir, 'node_modules', name, 'package.json');
  return existsSync(p) && JSON.parse(readFileSync(p, 'utf8')).version === VERSION;
};
if (!force && Object.keys(pkgs).every(installed)) {
  console.log(`install-llamacpp: node-llama-cpp ${VERSION} (${prebuilt}) already in ${dir}`);
  process.exit(0);
}

mkdirSync(dir, { recursive: true });
// The cache folder's own package.json (never the project's).
writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'mixtune-llamacpp-cache', private: true, dependencies: pkgs }, null, 2) + '\n');
const t0 = Date.now();
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const r = spawnSync(npm, ['install', '--prefix', dir, '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund', '--save-exact', '--loglevel=error'], {
  stdio: 'inherit',
  cwd: dir,
  shell: process.platform === 'win32',
});
if (r.status !== 0) {
  console.error(`install-llamacpp: npm install failed (exit ${r.status})`);
  process.exit(1);
}
for (const name of Object.keys(pkgs)) {
  if (!installed(name)) {
    console.error(`install-llamacpp: ${name}@${VERSION} is missing after npm install`);
    process.exit(1);
  }
}
console.log(`install-llamacpp: node-llama-cpp ${VERSION} (${prebuilt}) installed in ${dir} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
