// Types of nats-callout-client (the same surface in Node and in browsers).

/** How to log in: exactly one of these. */
export type Credentials =
  | { username: string; password: string }
  /** Key login: the challenge is signed with this nkey seed ("SU..."); `username`, if given, is checked. */
  | { seed: string; username?: string }
  /** An anonymous guest (the service's `http.guests`). */
  | { guest: true }
  /** An access token the app already holds (an identity provider's), or a function giving a fresh one. */
  | { token: string | (() => string | Promise<string>) }
  /** Browsers only: the session already in the HttpOnly cookies (a page reloaded while logged in). */
  | {};

export type ConnectOptions = Credentials & {
  /** The service's base URL ("" or a path prefix for the page's own origin in a browser). */
  api: string;
  /** nats-server: `nats://host:4222` (Node), `ws(s)://host:port` (browsers, Node 22+). Browsers default to the service's websocket listener. */
  servers?: string | string[];
  /** Browser mode: the tokens stay in HttpOnly cookies (default true in browsers, false in Node). */
  cookie?: boolean;
  /**
   * Connect with NATS credentials where the service mints them (operator mode): a user JWT for
   * a key generated for this client, so nats-server asks no callout; the callout decides
   * whenever they are refused or not offered. Default true in Node, false in browsers (the
   * key's seed would live in page JavaScript for the JWT's lifetime).
   */
  natsCredentials?: boolean;
  /** The device and application the session is for (the account page shows them). */
  deviceId?: string;
  clientId?: string;
  /** The connection's name in nats-server's monitoring. */
  name?: string;
  /** Renew the access token before it expires (default true); false: only when the service refuses it. */
  autoRefresh?: boolean;
  /** Renew this long before expiry at most (default 30 s; a quarter of a short lifetime). */
  refreshMarginMs?: number;
  /** Backoff between failed connection attempts: exponential, half of it random. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** How long send() waits for a connection while the client reconnects (default 10 s). */
  sendTimeoutMs?: number;
  connectTimeoutMs?: number;
  pingIntervalMs?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
};

/** What GET /api/config gives the kit (defaults for fields an older service does not send). */
export interface ServiceConfig {
  readSubject: string;
  writeSubject: string;
  inboxPrefix: string;
  maxRooms: number;
  noticeSubject: string;
  websocketPort: number | null;
  websocketUrl: string | null;
}

export declare const DEFAULT_CONFIG: Readonly<
  Pick<ServiceConfig, "readSubject" | "writeSubject" | "inboxPrefix" | "maxRooms" | "noticeSubject">
>;

/** Room names: letters, digits, '-' and '_', 1 to 64. */
export declare const ROOM_NAME: RegExp;

/** The delay before attempt `n` (1, 2, ...): exponential, capped, half of it random. */
export declare function backoffMs(
  n: number,
  options?: { initialMs?: number; maxMs?: number },
  random?: () => number,
): number;

/**
 * Every failure: `code` is the service's error code (`invalid-credentials`, `rate-limited`,
 * `not-room-owner`, `room-exists`, ...) or one of the kit's (`refused`, `read-only`,
 * `auth-expired`, `bad-room-name`, `too-many-rooms`, `not-joined`, `not-connected`,
 * `network`, `connect-failed`, `closed`, `left`, `bad-request`, `bad-seed`).
 */
export declare class ChatError extends Error {
  readonly name: "ChatError";
  readonly code: string;
  /** The HTTP status, for errors the service answered. */
  readonly status?: number;
  /** Seconds to wait (`rate-limited`). */
  readonly retryAfter?: number;
  /** The room concerned. */
  readonly room?: string;
  /** `auth-expired`: the service's code for the refused refresh; `refused`: why. */
  readonly reason?: string;
}

export type Access = "none" | "read" | "write" | "readwrite";

export interface GrantsChanged {
  type: "grants-changed";
  user: string;
  room: string;
  access: Access;
  previous: Access;
  source: "rooms" | "permissions";
}

/** How a connection authenticated: NATS credentials (a user JWT, operator mode) or the callout. */
export type Via = "credentials" | "callout";

export interface Events {
  /**
   * A connection is now the one in use (the first, or one that replaced another for any reason:
   * `reason` "credentials renewal" when its NATS credentials were due).
   */
  connected: { rooms: string[]; reason: string; connects: number; via: Via };
  /** A new connection replaced a lost one, or one told to go (lame-duck notice, grants changed). */
  reconnected: { reason: string };
  /** The connection in use closed (kick, server gone, expired); the kit reconnects by itself. */
  disconnected: { reason: string };
  /** nats-server asked this connection to go (a grant may have changed); the kit reconnects. */
  "lame-duck": {};
  /** A joined room is no longer granted: it left the room list. `removed`: a notice said so. */
  "room-lost": { room: string; reason: "removed" | "not-granted" };
  /** Access to a room grew (join it to use it; a joined room is reconnected by itself). */
  granted: { room: string; access: Access; previous: Access };
  /** Any change of access the service told (grew or shrank). */
  "rooms-changed": GrantsChanged;
  /** Every grants-changed notice, as the service sent it. */
  "grants-changed": GrantsChanged;
  /** The access token was renewed; `reason`: timer, expiring, api-401, nats-denied, closed. */
  refreshed: { expiresAt: number | null; reason: string };
  /**
   * NATS credentials are not used from now on (`reason`: the service's `operator-mode-only` or
   * `credentials-off`, or nats-server refused them): the callout decides every connect.
   */
  "credentials-off": { reason: string };
  /** A failed attempt (the kit retries), or `auth-expired` (the client then closes). */
  error: ChatError | Error;
  closed: {};
}

export interface MessageMeta {
  room: string;
  /** The sender's message id (null for a message without one). */
  id: string | null;
  subject: string;
}

export interface Room {
  name: string;
  read: boolean;
  write: boolean;
  description?: string;
  owner?: string;
  join?: "invite" | "open";
  owned?: boolean;
}

export interface Member {
  userId: string;
  access: Access;
  owner: boolean;
}

export declare class ChatClient {
  /** Log in, read the service's configuration and connect (no room yet). Rejects fast. */
  static connect(options: ConnectOptions): Promise<ChatClient>;
  /** The user id the service knows this client by. */
  readonly user: string;
  readonly config: ServiceConfig;
  /** How many times the access token was renewed. */
  readonly refreshes: number;
  /** How many connections were put in use so far (the first counts). */
  readonly connects: number;
  /** How the connection in use authenticated. */
  readonly via: Via;
  /** Join: resolves once granted; rejects with `code === "refused"` if not (other rooms go on). */
  join(room: string): Promise<void>;
  /** Leave: its handlers hear nothing more at once; resolves when the connection no longer has it. */
  leave(room: string): Promise<void>;
  /** The rooms joined, in join order. */
  rooms(): string[];
  /** Hear a room's messages; returns a function that stops listening. */
  onMessage(room: string, fn: (from: string, text: string, meta: MessageMeta) => void): () => void;
  /**
   * Send to a joined room; resolves with the message id once nats-server took it. `id` (1 to 64
   * characters) chooses it, e.g. to show the message as pending before the server echoes it.
   */
  send(room: string, text: string, options?: { id?: string }): Promise<string>;
  on<E extends keyof Events>(event: E, fn: (detail: Events[E]) => void): () => void;
  /** Rooms the user may join (`{open: true}`: open rooms not joined yet, paged). */
  availableRooms(query?: { open?: boolean; after?: string; limit?: number }): Promise<Room[]>;
  createRoom(
    name: string,
    options?: { description?: string; join?: "invite" | "open" },
  ): Promise<{ name: string; description?: string; join: "invite" | "open"; owner: string; createdAt: number }>;
  invite(room: string, userId: string, access?: Exclude<Access, "none">, options?: { owner?: boolean }): Promise<Member>;
  removeMember(room: string, userId: string): Promise<{ done: true }>;
  members(room: string): Promise<Member[]>;
  deleteRoom(room: string): Promise<{ done: true }>;
  /** Become a member of an open room, then join it. */
  joinOpen(room: string): Promise<Member>;
  me(): Promise<{ id: string; clientId: string | null; roles: string[]; [k: string]: unknown }>;
  /** End the session at the service, then close. */
  logout(): Promise<void>;
  /** Close the connections (the session stays valid). */
  close(): Promise<void>;
}
