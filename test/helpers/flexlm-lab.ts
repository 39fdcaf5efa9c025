import { freePort, startFlexlmSimulator, type FlexlmSimulatorProcess } from './flexlm-simulator-process.js';
import { startProxy, type ProxyProcess, type StartProxyOptions } from './proxy-harness.js';

export interface FlexlmLab {
  lmgrdPort: number;
  vendorPort: number;
  /** Server name → its FlexLM-mode simulator. */
  sims: Record<string, FlexlmSimulatorProcess>;
  proxy: ProxyProcess;
}

/**
 * FlexLM-mode simulators named `servers`, on 127.0.1.1, 127.0.1.2, … with lmgrd and the vendor daemon
 * on the same two ports everywhere, and a licgate in front of them on 127.0.0.1: an lmgrd frontend
 * and a vendor-daemon frontend (`server_port`) sharing the backend `licenses`. `backendKeys` are that
 * backend's keys besides name and servers, one per line; `serverKeys` adds keys to a server's entry
 * (`{ b: 'weight: 0' }`); `topKeys` are top-level lines (`admin: {...}`); `opts` go to startProxy,
 * and `opts.listen` moves the frontends (`{ vendor: '[::]:0' }`: the client is then pointed at
 * proxy.ports). The caller stops both with stopAll() and stopFlexlmSimulators().
 */
export async function startFlexlmLab(servers: string[], backendKeys: string[], serverKeys: Record<string, string> = {}, topKeys: string[] = [], opts: StartProxyOptions & { listen?: { lmgrd?: string; vendor?: string } } = {}): Promise<FlexlmLab> {
  const { listen = {}, ...proxyOpts } = opts;
  const [lmgrdPort, vendorPort] = [await freePort(), await freePort()];
  const hosts = servers.map((name, i) => [name, `127.0.1.${i + 1}`] as const);
  const sims: Record<string, FlexlmSimulatorProcess> = {};
  for (const [name, host] of hosts) sims[name] = await startFlexlmSimulator({ name, host, lmgrdPort, vendorPort });
  const proxy = await startProxy(`${topKeys.join('\n')}
frontends:
  - { name: lmgrd, listen: "${listen.lmgrd ?? `127.0.0.1:${lmgrdPort}`}", backend: licenses }
  - { name: vendor, listen: "${listen.vendor ?? `127.0.0.1:${vendorPort}`}", backend: licenses, server_port: ${vendorPort} }
backends:
  - name: licenses
${backendKeys.map((k) => `    ${k}`).join('\n')}
    servers:
${hosts.map(([name, host]) => `      - { name: ${name}, address: "${host}:${lmgrdPort}"${serverKeys[name] ? `, ${serverKeys[name]}` : ''} }`).join('\n')}
`, proxyOpts);
  return { lmgrdPort, vendorPort, sims, proxy };
}
