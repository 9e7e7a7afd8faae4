#!/usr/bin/env node
// Installs what `npm start` / `npm test` need on a fresh Debian 12 + Node 20 machine, then returns.
// Plain Node (no dependencies): it runs before node_modules exists.
//   node config/setup.mjs start   Debian packages for the appliance (clamav-daemon), npm packages, browser bundle
//   node config/setup.mjs test    the same plus the real peers the tests use (dcmtk, orthanc, chromium, ...)
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, statSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv[2] ?? 'start';

const packages = {
  start: ['clamav-daemon'],
  test: ['clamav-daemon', 'clamav-testfiles', 'dcmtk', 'orthanc', 'chromium', 'python3-pydicom', 'unzip'],
}[mode];
if (!packages) {
  console.error(`setup: unknown mode ${mode} (start or test)`);
  process.exit(2);
}

function say(msg) {
  console.log(`[setup] ${msg}`);
}

function installed(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

const missing = packages.filter((p) => !installed(p));
if (missing.length) {
  if (process.getuid && process.getuid() !== 0) {
    console.error(`[setup] missing Debian packages: ${missing.join(' ')}. Run as root, or: sudo apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  say(`installing Debian packages: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-q'], { stdio: 'inherit', env });
  // With recommended packages (fonts for Chromium, ...), as on the machines the tests were written on.
  execFileSync('apt-get', ['install', '-y', '-q', ...missing], { stdio: 'inherit', env });
}

// npm packages: (re)install when node_modules is missing or older than the lockfile.
const lock = path.join(root, 'package-lock.json');
const marker = path.join(root, 'node_modules', '.package-lock.json');
if (!existsSync(marker) || statSync(marker).mtimeMs < statSync(lock).mtimeMs) {
  say('installing npm packages (npm ci)');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}

// Browser bundle: rebuilt when any browser source is newer than the bundle.
const build = path.join(root, 'views', 'build.mjs');
if (existsSync(build)) {
  const out = path.join(root, 'views', 'static', 'build', '.stamp');
  const newest = (dir) =>
    readdirSync(dir, { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile())
      .reduce((m, e) => Math.max(m, statSync(path.join(e.parentPath ?? e.path, e.name)).mtimeMs), 0);
  const src = path.join(root, 'views', 'src');
  if (!existsSync(out) || (existsSync(src) && newest(src) > statSync(out).mtimeMs)) {
    say('building the browser bundle');
    execFileSync(process.execPath, [build], { cwd: root, stdio: 'inherit' });
  }
}
