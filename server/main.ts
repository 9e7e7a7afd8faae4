/**
 * The composition root: load the config (every problem printed, exit non-zero, nothing started), build the
 * appliance, start HTTP and DICOM, and shut both down cleanly on SIGTERM / SIGINT.
 */
import http from 'node:http';
import { createAppliance } from '../appliance/appliance.ts';
import { child, createLogger } from '../appliance/log.ts';
import { ConfigError, loadConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { createApp } from './app.ts';

function load(): Config {
  try {
    return loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`Uplink cannot start: the configuration has ${e.problems.length} problem(s):`);
      for (const p of e.problems) console.error(`  - ${p}`);
      process.exit(2);
    }
    throw e;
  }
}

async function main(): Promise<void> {
  const config = load();
  const root = createLogger(config.log.level);
  const log = child(root, 'main');
  const appliance = createAppliance(config, root);
  let httpUp = false;
  const app = createApp({ config, appliance, log: child(root, 'http'), httpListening: () => httpUp });
  const server = http.createServer(app.callback());
  server.requestTimeout = 120_000;
  server.headersTimeout = 30_000;
  server.keepAliveTimeout = 10_000;

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    httpUp = false;
    const closed = new Promise<void>((res) => server.close(() => res()));
    server.closeIdleConnections();
    await appliance.stop();
    await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
    server.closeAllConnections();
    log.info('stopped');
    root.flush();
    process.exit(0);
  };
  process.on('unhandledRejection', (e) => log.error({ err: e }, 'unhandled promise rejection'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const { dicom } = await appliance.start();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, () => resolve());
  });
  httpUp = true;
  const addr = server.address() as import('node:net').AddressInfo;
  log.info({ http: `${addr.address}:${addr.port}`, dicom: `${dicom.host}:${dicom.port}`, aeTitle: config.dicom.aeTitle, dataDir: config.dataDir }, 'Uplink started');
  console.log(`Uplink is running.\n  Web portal and console: http://${addr.address}:${addr.port}/\n  DICOM node: AE title ${config.dicom.aeTitle} on ${dicom.host}:${dicom.port}\n  Data: ${config.dataDir}`);
}

main().catch((e) => {
  console.error('Uplink failed to start:', e instanceof Error ? e.message : e);
  process.exit(1);
});
