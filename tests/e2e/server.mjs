// Starts `hearth serve` on a free loopback port for a test file and stops it afterwards.
// HEARTH_BIN names the binary (CTest sets it; default build/hearth), HEARTH_TESTDATA the shared
// test data folder (default ../shared/testdata from the repository root).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const hearthBin = process.env.HEARTH_BIN || path.join(root, 'build', 'hearth');
export const testdata = process.env.HEARTH_TESTDATA || path.join(root, '..', 'shared', 'testdata');

/**
 * Runs `hearth serve --port 0 ARGS...` and resolves once it prints "listening on http://HOST:PORT".
 * Returns { url, port, log(), stop() }; stop() sends SIGTERM and resolves with the exit code.
 * Rejects if the server exits first or does not listen within `timeoutMs`.
 */
export function startServer(args = [], { timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(hearthBin, ['serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      child.kill('SIGKILL');
      reject(new Error(`hearth serve did not start within ${timeoutMs} ms:\n${stderr}`));
    }, timeoutMs);
    const exited = new Promise((res) => child.on('exit', (code, signal) => res(code ?? signal)));
    child.stdout.on('data', () => {});
    child.stderr.on('data', (chunk) => {
      stderr += chunk.toString();
      const m = stderr.match(/listening on (http:\/\/[^\s]+?):(\d+)/);
      if (m && !settled) {
        settled = true;
        clearTimeout(timer);
        const url = `${m[1]}:${m[2]}`;
        resolve({
          url,
          port: Number(m[2]),
          log: () => stderr,
          stop: async () => {
            child.kill('SIGTERM');
            return exited;
          },
        });
      }
    });
    child.on('exit', (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`hearth serve exited with ${code} before listening:\n${stderr}`));
    });
  });
}

/** Euclidean norm of a vector. */
export function norm(v) {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}
