// The kit for browsers: nats-server's websocket listener. With `cookie: true` (the default
// here) the service keeps the tokens in HttpOnly cookies; the websocket listener lifts the
// access token from the cookie, so CONNECT carries no `auth_token` and no script sees one.
// NATS credentials (operator mode) are off here unless the app asks (`natsCredentials: true`):
// their key's seed would live in page JavaScript, where an injected script could take it and
// connect as the user until the JWT expires.

import { wsconnect } from "@nats-io/nats-core";
import { ChatClient as Core } from "./client.js";

export { ChatError } from "./errors.js";
export { ROOM_NAME, backoffMs } from "./client.js";
export { DEFAULT_CONFIG } from "./api.js";

/** The websocket URL the service names, or the page's host with its websocket port. */
function websocketUrl(config) {
  if (config.websocketUrl) return config.websocketUrl;
  if (!config.websocketPort || typeof location === "undefined") return undefined;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.hostname}:${config.websocketPort}`;
}

export class ChatClient extends Core {
  /** Log in and connect; see index.d.ts. */
  static connect(options) {
    return this.open(options, wsconnect, { cookie: true, natsCredentials: false, servers: websocketUrl });
  }
}
