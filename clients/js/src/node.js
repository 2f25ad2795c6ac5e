// The kit for Node: nats-server over TCP (`nats://`) with @nats-io/transport-node, or over a
// websocket (`ws://`, `wss://`) where Node has a WebSocket (22 and later). The access token
// goes in CONNECT `auth_token`; where the service mints NATS credentials (operator mode), the
// kit connects with those instead (`natsCredentials: false` keeps the callout).

import { connect } from "@nats-io/transport-node";
import { wsconnect } from "@nats-io/nats-core";
import { ChatClient as Core } from "./client.js";

export { ChatError } from "./errors.js";
export { ROOM_NAME, backoffMs } from "./client.js";
export { DEFAULT_CONFIG } from "./api.js";

const isWs = (url) => /^wss?:\/\//i.test(url);

function dial(opts) {
  const servers = [opts.servers].flat();
  return servers.every(isWs) ? wsconnect(opts) : connect(opts);
}

export class ChatClient extends Core {
  /** Log in and connect; see index.d.ts. */
  static connect(options) {
    return this.open(options, dial, { cookie: false, natsCredentials: true });
  }
}
