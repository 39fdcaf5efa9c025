#!/usr/bin/env node
// licgate's relay on its own (`--with-relay`): the libuv TCP handles and src/proxy/relay.ts that
// licgate's data plane runs on, with nothing around them. Per connection: accept, getpeername and
// TCP_NODELAY as a session does, one connect at once, then the Relay; no in-band STATUS sniffing,
// balancing, retries, timers, health checks, logs or metrics. So licgate/relay is what licgate's own
// per-session work costs, and relay/haproxy the floor of a Node proxy on these handles. With no
// once-a-second sweep a direction's read count never starts over, so it takes a pooled read buffer
// after 64 reads in all rather than in one second: the same under the bench's loads.
//
// Usage: node bench/handle-relay.mjs [run] --config FILE   (the bench's generated YAML: proxy-config.mjs)
// Needs the build (`npm run build`): it runs dist/, the same code licgate runs.
import { errnoCode, newConnectReq, newServerHandle, newSocketHandle } from '../dist/io/tcp-handle.js';
import { Relay } from '../dist/proxy/relay.js';
import { readFrontends } from './proxy-config.mjs';

const owner = { relayDone() {} };

for (const fe of readFrontends('handle-relay')) {
  const listener = newServerHandle();
  const err = listener.bind(fe.host, fe.port) || listener.listen(4096);
  if (err !== 0) {
    process.stderr.write(`handle-relay: ${fe.name}: listen ${fe.host}:${fe.port} failed: ${errnoCode(err)}\n`);
    process.exit(1);
  }
  listener.onconnection = (status, client) => {
    if (status !== 0 || !client) return;
    client.getpeername({});
    client.setNoDelay(true);
    const upstream = newSocketHandle();
    upstream.setNoDelay(true);
    const req = newConnectReq();
    req.oncomplete = (result) => {
      if (result !== 0) {
        client.close();
        upstream.close();
        return;
      }
      new Relay(client, upstream, owner).startClient(null, false);
    };
    if (upstream.connect(req, fe.to.host, fe.to.port) !== 0) {
      client.close();
      upstream.close();
    }
  };
}

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
