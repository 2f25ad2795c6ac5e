// The chat client: one NATS connection carrying the rooms wanted, replaced make-before-break
// whenever the list or the grant changes.
//
// The protocol (docs: guides/writing-a-client-js, concepts/live-permissions):
// - CONNECT `user` carries the rooms wanted, joined by ';'; `auth_token` the access token
//   (token mode), or nothing in a browser, whose websocket carries the HttpOnly cookie.
// - A grant is fixed for a connection's life. Joining or leaving opens a NEW connection with
//   the new list, subscribes every room on it and flushes: nats-server answers a SUB it
//   refuses with a permission error before the PONG of that flush, so after the flush every
//   room is known granted or refused. Only then is the new connection used and the old one
//   drained: no moment in which a granted room hears nothing.
// - A lame-duck notice (INFO ldm), a grants-changed notice for a wanted room, a closed
//   connection (kick, restart, "User Authentication Expired") all lead to the same swap, with
//   a jittered exponential backoff between failed attempts; a denied connect ("Authorization
//   Violation") first renews the access token.
// - NATS credentials (operator mode; docs: guides/operator-mode#nats-credentials): with
//   `natsCredentials` (Node's default) each connection first asks the service for a user JWT
//   for the client's own nkey and the rooms wanted, and connects with it, signing the nonce:
//   nats-server then asks no callout. A 404 (`operator-mode-only`, `credentials-off`) or
//   nats-server refusing a fresh JWT turns them off for the client's life; any other failure
//   leaves that one connect to the callout. A reconnect with the same rooms reuses the JWT
//   unless a notice came, its connection lived less than SHORT_LIVED_MS (a kick) or four
//   fifths of its life have passed; then the kit swaps to a connection with fresh ones.

import { createUser } from "@nats-io/nkeys";
import { Api, base64url, jwtClaims, seg } from "./api.js";
import { ChatError, isAuthError, isExpired } from "./errors.js";

export const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_SEEN = 5000;
const DRAIN_TIMEOUT_MS = 3000;
const REFRESH_MARGIN_MS = 30_000;
/** How long a notice heard on one connection is recognised when another repeats it. */
const NOTICE_ECHO_MS = 5000;
/** A credentials connection closed sooner than this was likely closed on purpose (a kick). */
const SHORT_LIVED_MS = 5000;
/** Access levels as bits: 1 read, 2 write. */
const ACCESS = { none: 0, read: 1, write: 2, readwrite: 3 };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Lets every queued callback run (status iterators deliver a few microtasks later). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

function newId() {
  const bytes = new Uint8Array(12);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Fill `{room}` and `{user}` into a subject template. */
export function fill(template, values) {
  return template.replace(/\{(room|user)\}/g, (_, k) => values[k] ?? "");
}

/** Who sent a message: the subject token where the write template has `{user}`. */
export function senderOf(writeTemplate, room, subject) {
  const want = writeTemplate.split(".");
  const got = subject.split(".");
  if (want.length !== got.length) return null;
  let user = null;
  for (let i = 0; i < want.length; i++) {
    if (want[i] === "{user}") user = got[i];
    else if (fill(want[i], { room }) !== got[i]) return null;
  }
  return user;
}

/**
 * What is left of a JWT's life at receipt (ms): until `exp` (unix seconds) on this machine's
 * clock, never more than it was issued for (`exp - iat`), so a clock behind cannot stretch it.
 */
export function credentialsLifeMs(exp, iat, nowMs = Date.now()) {
  const left = exp * 1000 - nowMs;
  const issued = typeof iat === "number" ? (exp - iat) * 1000 : left;
  return Math.max(0, Math.min(left, issued));
}

/**
 * Delay before attempt `n` (1, 2, ...): exponential from `initialMs` up to `maxMs`, half of it
 * random ("equal jitter"), so clients cut off together do not come back together.
 */
export function backoffMs(n, { initialMs = 250, maxMs = 30_000 } = {}, random = Math.random) {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(n - 1, 0), 20));
  return ceiling / 2 + random() * (ceiling / 2);
}

export class ChatClient {
  /**
   * Log in, read the service's configuration and open the first connection (no room yet).
   * Fails fast: a wrong password or an unreachable server rejects here.
   * @param {object} options see index.d.ts
   * @param {(opts: object) => Promise<any>} dial the transport (node.js, browser.js)
   * @param {{cookie: boolean, servers?: () => string}} defaults
   */
  static async open(options, dial, defaults) {
    const o = { ...options };
    if (typeof o.api !== "string") {
      throw new ChatError("bad-request", "`api` (the service's base URL; \"\" for the page's own) is required");
    }
    const cookie = o.cookie ?? defaults.cookie;
    const api = new Api({ ...o, cookie });
    const config = await api.config();
    if (o.guest) {
      await api.guest();
    } else if (o.seed) {
      await api.keyLogin(o.seed);
    } else if (o.token) {
      await api.useToken(o.token);
      api.user = (await api.call("GET", "/api/auth/me")).id;
    } else if (o.username !== undefined && o.password !== undefined) {
      await api.login(o.username, o.password);
    } else if (cookie) {
      // A page reloaded while logged in: the cookie holds the session.
      const now = await api.raw("GET", "/api/config", undefined, { bearer: false });
      if (now.data?.user) {
        api.adoptCookieSession(now);
      } else {
        await api.refresh();
      }
      if (!api.user) api.user = (await api.call("GET", "/api/auth/me")).id;
    } else {
      throw new ChatError(
        "bad-request",
        "give username and password, token, seed, or guest: true",
      );
    }
    if (o.username && api.user && o.seed && o.username !== api.user) {
      throw new ChatError("invalid-credentials", `the key belongs to ${api.user}, not ${o.username}`);
    }
    const servers = o.servers ?? defaults.servers?.(config);
    if (!servers) throw new ChatError("bad-request", "`servers` (nats-server's URL) is required");
    const credentials = o.natsCredentials ?? defaults.natsCredentials ?? false;
    const client = new this(o, api, config, servers, dial, credentials);
    try {
      await client.#first();
    } catch (err) {
      await client.close();
      throw err;
    }
    return client;
  }

  /** The client's own user nkey (NATS credentials), or null when they are off. */
  #nkey = null;
  /** The JWT held: {jwt, rooms, renewAt, upSince, spent, fresh}, or null. */
  #held = null;

  /** @private use ChatClient.connect */
  constructor(o, api, config, servers, dial, credentials = false) {
    this.api = api;
    this.config = config;
    this.servers = servers;
    this.dial = dial;
    this.user = api.user;
    this.options = o;
    this.backoff = o.backoff ?? {};
    /** @type {Map<string, {state: "joining"|"joined", waiters: ReturnType<typeof deferred>[], seen: Set<string>}>} */
    this.wanted = new Map();
    /** @type {Map<string, Set<Function>>} */
    this.handlers = new Map();
    /** @type {Map<string, Set<Function>>} */
    this.listeners = new Map();
    this.conn = null;
    this.pending = null;
    this.ended = false;
    this.connects = 0;
    this.refreshes = 0;
    this.waitingForConn = [];
    /** How the connection in use authenticated: "credentials" or "callout" (null before). */
    this.via = null;
    if (credentials) this.#nkey = createUser();
    this.api.onRefreshed = (reason) => {
      this.refreshes += 1;
      this.#schedule();
      this.#emit("refreshed", { expiresAt: this.api.expiresAt, reason });
    };
  }

  // ---- events ---------------------------------------------------------------------------

  /** Listen to an event; returns a function that stops listening. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event)?.delete(fn);
  }

  #emit(event, detail) {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        fn(detail);
      } catch (err) {
        if (event !== "error") this.#emit("error", err);
      }
    }
  }

  // ---- rooms ------------------------------------------------------------------------------

  /** The rooms joined, in join order. */
  rooms() {
    return [...this.wanted].filter(([, r]) => r.state === "joined").map(([name]) => name);
  }

  /** Hear `room`'s messages: `fn(from, text, {room, id, subject})`. Returns an unsubscribe. */
  onMessage(room, fn) {
    if (!this.handlers.has(room)) this.handlers.set(room, new Set());
    this.handlers.get(room).add(fn);
    return () => this.handlers.get(room)?.delete(fn);
  }

  /** Join `room`: resolves once granted, rejects with code `refused` if not. */
  join(room) {
    if (this.ended) return Promise.reject(new ChatError("closed", "the client is closed"));
    if (typeof room !== "string" || !ROOM_NAME.test(room)) {
      return Promise.reject(
        new ChatError("bad-room-name", "a room name is 1 to 64 letters, digits, '-' or '_'", { room }),
      );
    }
    const existing = this.wanted.get(room);
    if (existing?.state === "joined") return Promise.resolve();
    if (!existing && this.wanted.size >= this.config.maxRooms) {
      return Promise.reject(
        new ChatError("too-many-rooms", `at most ${this.config.maxRooms} rooms at once`, { room }),
      );
    }
    const entry = existing ?? { state: "joining", waiters: [], seen: new Set() };
    const d = deferred();
    entry.waiters.push(d);
    this.wanted.set(room, entry);
    this.#reconnect(`join ${room}`);
    return d.promise;
  }

  /** Leave `room`: its handlers hear nothing more at once; resolves when the grant is gone. */
  async leave(room) {
    const entry = this.wanted.get(room);
    if (!entry) return;
    this.wanted.delete(room);
    for (const w of entry.waiters) w.reject(new ChatError("left", `left ${room} before it was joined`, { room }));
    this.conn?.subs.get(room)?.unsubscribe();
    await this.#reconnect(`leave ${room}`);
  }

  /**
   * Send `text` to `room` (joined). Resolves with the message id once the server took it;
   * `{id}` chooses the id (1 to 64 characters), e.g. to show the message before it is sent.
   */
  async send(room, text, { id = newId() } = {}) {
    const entry = this.wanted.get(room);
    if (!entry) throw new ChatError("not-joined", `join ${room} first`, { room });
    if (entry.state === "joining") await this.join(room);
    if (typeof text !== "string") throw new ChatError("bad-request", "text must be a string");
    if (typeof id !== "string" || id.length === 0 || id.length > 64) {
      throw new ChatError("bad-request", "a message id is 1 to 64 characters");
    }
    const conn = await this.#connected();
    const subject = fill(this.config.writeSubject, { room, user: this.user });
    conn.pubDenied.delete(subject);
    try {
      conn.nc.publish(subject, JSON.stringify({ id, text }));
      await conn.nc.flush();
    } catch (err) {
      throw new ChatError("network", `not sent: ${err.message}`, { room, cause: err });
    }
    await settle();
    if (conn.pubDenied.has(subject)) {
      throw new ChatError("read-only", `you may read ${room} but not write in it`, { room });
    }
    return id;
  }

  // ---- rooms as data (HTTP) -------------------------------------------------------------

  /** The rooms the user may join (`GET /api/rooms`); `{open: true}` lists open rooms to join. */
  availableRooms(query) {
    return this.api.rooms(query);
  }
  /** Make a room the user owns. */
  createRoom(name, { description, join } = {}) {
    const body = { name };
    if (description !== undefined) body.description = description;
    if (join !== undefined) body.join = join;
    return this.api.call("POST", "/api/rooms", body);
  }
  /** Add or change a member (owners, admins). */
  invite(room, userId, access = "readwrite", { owner } = {}) {
    const body = { userId, access };
    if (owner !== undefined) body.owner = owner;
    return this.api.call("POST", `/api/rooms/${seg(room)}/members`, body);
  }
  /** Remove a member (owners, admins, or the member leaving). */
  removeMember(room, userId) {
    return this.api.call("DELETE", `/api/rooms/${seg(room)}/members/${seg(userId)}`);
  }
  members(room) {
    return this.api.call("GET", `/api/rooms/${seg(room)}/members`);
  }
  deleteRoom(room) {
    return this.api.call("DELETE", `/api/rooms/${seg(room)}`);
  }
  /** Become a member of an open room, then join it. */
  async joinOpen(room) {
    const member = await this.api.call("POST", `/api/rooms/${seg(room)}/join`);
    await this.join(room);
    return member;
  }
  /** `GET /api/auth/me`. */
  me() {
    return this.api.call("GET", "/api/auth/me");
  }

  /** End the session at the service (the refresh token stops working), then close. */
  async logout() {
    try {
      await this.api.logout();
    } finally {
      await this.close();
    }
  }

  /** Close every connection; the session stays valid (see logout). */
  async close() {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.refreshTimer);
    clearTimeout(this.credentialsTimer);
    for (const [room, entry] of this.wanted) {
      for (const w of entry.waiters) w.reject(new ChatError("closed", "the client is closed", { room }));
      entry.waiters = [];
    }
    for (const w of this.waitingForConn) w.reject(new ChatError("closed", "the client is closed"));
    this.waitingForConn = [];
    // A connection still being dialled has no `nc` yet: #swap closes it when the dial ends.
    const conns = [this.conn, this.pending].filter((c) => c?.nc);
    this.conn = this.pending = null;
    await Promise.all(conns.map((c) => c.nc.close().catch(() => {})));
    this.#credentialsOff();
    this.#emit("closed", {});
  }

  // ---- the access token -----------------------------------------------------------------

  #margin() {
    const life = this.api.lifetimeMs ?? 0;
    return Math.min(this.options.refreshMarginMs ?? REFRESH_MARGIN_MS, life / 4);
  }

  #schedule() {
    clearTimeout(this.refreshTimer);
    if (this.ended || this.options.autoRefresh === false || this.api.expiresAt === null) return;
    if (!this.api.renewable()) return;
    const at = Math.max(this.api.expiresAt - this.#margin() - Date.now(), 500);
    this.refreshTimer = setTimeout(() => this.#refreshNow(), at);
  }

  async #refreshNow() {
    try {
      await this.api.refresh("timer");
    } catch (err) {
      if (this.ended) return;
      if (err.code === "auth-expired") return this.#fail(err);
      // The service is unreachable or busy: try again a little later.
      this.refreshTimer = setTimeout(() => this.#refreshNow(), (err.retryAfter ?? 5) * 1000);
    }
  }

  #fail(err) {
    if (this.ended) return;
    this.#emit("error", err);
    this.close();
  }

  // ---- NATS credentials (operator mode) --------------------------------------------------

  /** No credentials from now on: the callout decides every connect. */
  #credentialsOff(why) {
    if (!this.#nkey) return;
    this.#nkey.clear();
    this.#nkey = null;
    this.#held = null;
    clearTimeout(this.credentialsTimer);
    if (why) this.#emit("credentials-off", { reason: why });
  }

  /** The grant may have changed: the next connect asks for fresh credentials. */
  #spend() {
    if (this.#held) this.#held.spent = true;
  }

  /** A JWT for `rooms` (reused or fresh), or null when the callout is to decide. */
  async #credentialsFor(rooms) {
    if (!this.#nkey) return null;
    const key = rooms.join(";");
    const h = this.#held;
    if (h && !h.spent && h.rooms === key && Date.now() < h.renewAt) return h.jwt;
    let data;
    try {
      data = await this.api.call("POST", "/api/auth/nats-credentials", {
        publicKey: this.#nkey.getPublicKey(),
        rooms,
      });
    } catch (err) {
      if (err.code === "auth-expired") throw err;
      if (err.status === 404) this.#credentialsOff(err.code);
      return null;
    }
    if (typeof data?.jwt !== "string" || typeof data.expiresAt !== "number") return null;
    const life = credentialsLifeMs(data.expiresAt, jwtClaims(data.jwt)?.iat);
    this.#held = {
      jwt: data.jwt,
      rooms: key,
      renewAt: Date.now() + life * 0.8,
      upSince: null,
      spent: false,
      fresh: true,
    };
    return data.jwt;
  }

  /** CONNECT with the JWT and the nonce signed by the client's key. */
  #jwtAuth(jwt) {
    const kp = this.#nkey;
    const nkey = kp.getPublicKey();
    return (nonce) => ({ jwt, nkey, sig: base64url(kp.sign(new TextEncoder().encode(nonce ?? ""))) });
  }

  /** A connection with credentials is in use: renew them at four fifths of their life. */
  #credentialsInUse(conn) {
    clearTimeout(this.credentialsTimer);
    const h = this.#held;
    if (conn.via !== "credentials" || !h) return;
    h.upSince = Date.now();
    h.fresh = false;
    this.credentialsTimer = setTimeout(
      () => {
        h.spent = true; // a timer may fire a little before renewAt on Date.now()'s clock
        this.#reconnect("credentials renewal");
      },
      Math.max(h.renewAt - Date.now(), 0),
    );
  }

  // ---- connections ------------------------------------------------------------------------

  async #first() {
    this.#schedule();
    try {
      await this.#swap();
    } catch (err) {
      if (!isAuthError(err) || !this.api.renewable()) throw this.#connectError(err);
      // Denied: the token may have just expired. Renew it and try once more.
      this.forceRefresh = "nats-denied";
      try {
        await this.#swap();
      } catch (again) {
        throw this.#connectError(again);
      }
    }
  }

  #connectError(err) {
    if (err instanceof ChatError) return err;
    if (isAuthError(err)) {
      return new ChatError("auth-expired", "nats-server refused the connection (Authorization Violation)", {
        cause: err,
      });
    }
    return new ChatError("connect-failed", `cannot connect to nats-server: ${err.message}`, { cause: err });
  }

  /** The connection in use, waiting (up to sendTimeoutMs) while one is being made. */
  #connected() {
    if (this.conn) return Promise.resolve(this.conn);
    if (this.ended) return Promise.reject(new ChatError("closed", "the client is closed"));
    const d = deferred();
    this.waitingForConn.push(d);
    const timer = setTimeout(() => {
      this.waitingForConn = this.waitingForConn.filter((w) => w !== d);
      d.reject(new ChatError("not-connected", "no connection to nats-server; try again"));
    }, this.options.sendTimeoutMs ?? 10_000);
    return d.promise.finally(() => clearTimeout(timer));
  }

  /** Ask for a new connection with the wanted rooms; requests made meanwhile coalesce. */
  #reconnect(why) {
    if (this.ended) return Promise.resolve();
    this.again = true;
    this.why = why;
    if (!this.looping) {
      this.looping = true;
      this.loop = this.#connectLoop();
    }
    return this.loop;
  }

  async #connectLoop() {
    await null; // begins once #reconnect has stored the promise
    let failures = 0;
    try {
      while (this.again && !this.ended) {
        this.again = false;
        const why = this.why;
        try {
          await this.#swap(why);
          failures = 0;
        } catch (err) {
          if (this.ended) return;
          this.again = true;
          if (err instanceof ChatError && err.code === "auth-expired") return this.#fail(err);
          if (isAuthError(err) && this.api.renewable() && !this.refreshedForRetry) {
            this.forceRefresh = "nats-denied"; // renew the token, then try again at once
            continue;
          }
          if (isAuthError(err)) {
            // Denied with a fresh token: a room just asked for made the whole request invalid
            // (a reserved name, say). Refuse those rooms; the others keep working.
            const joining = [...this.wanted].filter(([, r]) => r.state === "joining");
            if (joining.length > 0) {
              for (const [room] of joining) this.#refuse(room, "the server refused the connection with it");
              continue;
            }
          }
          failures += 1;
          this.#emit("error", this.#connectError(err));
          await sleep(backoffMs(failures, this.backoff));
        }
      }
    } finally {
      // In the same turn as the last look at `again`: a request after it starts a new loop.
      this.looping = false;
    }
  }

  /** Open a connection with the wanted rooms, subscribe them all, then retire the old one. */
  async #swap(why = "connect") {
    this.refreshedForRetry = false;
    const exp = this.api.expiresAt;
    const expiring =
      this.api.proactive && exp !== null && this.api.renewable() && exp - Date.now() < this.#margin();
    if (this.forceRefresh || expiring) {
      await this.api.refresh(this.forceRefresh || "expiring");
      this.forceRefresh = false;
      this.refreshedForRetry = true;
    }
    if (this.ended) return;
    const rooms = [...this.wanted.keys()];
    const jwt = await this.#credentialsFor(rooms);
    if (this.ended) return;
    // After the mint, which may have renewed the token.
    const auth = { user: rooms.join(";") };
    if (!this.api.cookie && this.api.accessToken) auth.auth_token = this.api.accessToken;
    const conn = { nc: null, subs: new Map(), rooms, refused: new Set(), pubDenied: new Set(), via: "callout" };
    this.pending = conn;
    const open = (authenticator) =>
      this.dial({
        servers: this.servers,
        name: this.options.name ?? `nats-callout-client (${this.user})`,
        authenticator,
        inboxPrefix: fill(this.config.inboxPrefix, { user: this.user }),
        // The kit reconnects itself: make-before-break, token renewed first, backoff.
        reconnect: false,
        ignoreClusterUpdates: true,
        timeout: this.options.connectTimeoutMs ?? 10_000,
        pingInterval: this.options.pingIntervalMs ?? 20_000,
        maxPingOut: 2,
      });
    try {
      if (jwt) {
        try {
          conn.via = "credentials";
          conn.nc = await open(this.#jwtAuth(jwt));
        } catch (err) {
          if (!isAuthError(err)) throw err;
          // nats-server refused the JWT: a fresh one means credentials do not work here.
          if (this.#held?.fresh) this.#credentialsOff("nats-server refused the credentials");
          else this.#spend();
          conn.via = "callout";
        }
      }
      if (!conn.nc) conn.nc = await open(() => auth);
    } catch (err) {
      if (this.pending === conn) this.pending = null;
      throw err;
    }
    if (this.ended || this.pending !== conn) {
      conn.nc.close().catch(() => {});
      return;
    }
    this.#watch(conn);
    try {
      const notices = fill(this.config.noticeSubject, { user: this.user });
      conn.nc.subscribe(notices, { callback: (err, msg) => err || this.#notice(conn, msg) });
      for (const room of rooms) {
        const sub = conn.nc.subscribe(fill(this.config.readSubject, { room }), {
          callback: (err, msg) => {
            if (err) conn.refused.add(room);
            else if (conn === this.conn || conn === this.pending) this.#deliver(room, msg);
            else if (this.retiring?.has(conn)) this.#deliver(room, msg);
          },
        });
        conn.subs.set(room, sub);
      }
      // nats-server answers a SUB it refuses before the PONG to this flush.
      await conn.nc.flush();
    } catch (err) {
      if (this.pending === conn) this.pending = null;
      conn.nc.close().catch(() => {});
      throw err;
    }
    if (this.ended) {
      conn.nc.close().catch(() => {});
      return;
    }
    for (const room of rooms) {
      const entry = this.wanted.get(room);
      if (!entry) continue; // left meanwhile
      if (conn.refused.has(room)) {
        if (entry.state === "joining") this.#refuse(room, "not granted");
        else this.#lost(room);
      } else if (entry.state === "joining") {
        entry.state = "joined";
        for (const w of entry.waiters) w.resolve();
        entry.waiters = [];
      }
    }
    const old = this.conn;
    this.conn = conn;
    this.pending = null;
    this.connects += 1;
    this.via = conn.via;
    this.#credentialsInUse(conn);
    for (const w of this.waitingForConn) w.resolve(conn);
    this.waitingForConn = [];
    this.#emit("connected", { rooms: this.rooms(), reason: why, connects: this.connects, via: conn.via });
    // A join, a leave or a credentials renewal is the app's or the kit's own move, not a reconnect.
    if (this.connects > 1 && !/^(join |leave |credentials renewal$)/.test(why)) this.#emit("reconnected", { reason: why });
    if (old) this.#retire(old);
  }

  #refuse(room, reason) {
    const entry = this.wanted.get(room);
    if (!entry) return;
    this.wanted.delete(room);
    const err = new ChatError("refused", `you may not join ${room}: ${reason}`, { room, reason });
    for (const w of entry.waiters) w.reject(err);
  }

  #lost(room) {
    this.wanted.delete(room);
    this.#emit("room-lost", { room, reason: this.removed?.has(room) ? "removed" : "not-granted" });
  }

  /** Drain a connection no longer in use (its messages still count); close it if slow. */
  #retire(conn) {
    this.retiring ??= new Set();
    this.retiring.add(conn);
    Promise.race([conn.nc.drain(), sleep(DRAIN_TIMEOUT_MS)])
      .catch(() => {})
      .finally(() => {
        this.retiring.delete(conn);
        conn.nc.close().catch(() => {});
      });
  }

  #watch(conn) {
    const nc = conn.nc;
    (async () => {
      for await (const s of nc.status()) {
        if (s.type === "ldm" && (conn === this.conn || conn === this.pending)) {
          this.#emit("lame-duck", {});
          this.#spend(); // the grant may have changed: fresh credentials
          this.#reconnect("lame-duck notice");
        } else if (s.type === "error" && s.error?.name === "PermissionViolationError") {
          if (s.error.operation === "publish") conn.pubDenied.add(s.error.subject);
        }
      }
    })().catch(() => {});
    nc.closed().then((err) => {
      if (conn !== this.conn || this.ended) return;
      // Kicked, expired, or the server went away: reconnect (renewing the token if it was
      // refused or its connection expired).
      this.conn = null;
      this.#emit("disconnected", { reason: err ? err.message : "closed" });
      if (conn.via === "credentials") {
        // Closed soon after it came up (a kick): reconnect with fresh credentials. An expired
        // JWT is past its renewal time anyway; the access token is not at fault.
        const h = this.#held;
        if (h && (h.upSince === null || Date.now() - h.upSince < SHORT_LIVED_MS || isAuthError(err))) this.#spend();
      } else if (err && (isExpired(err) || isAuthError(err))) this.forceRefresh = "closed";
      this.#reconnect(err ? `closed: ${err.message}` : "closed");
    });
  }

  /**
   * Whether a notice is new: during a swap both connections hear it, so the same payload from
   * another connection within a few seconds is the same notice (one connection repeating it is
   * a new one).
   */
  #firstHearing(conn, msg) {
    if (conn !== this.conn && conn !== this.pending && !this.retiring?.has(conn)) return false;
    const now = Date.now();
    const key = msg.string();
    this.heard = (this.heard ?? []).filter((h) => now - h.at < NOTICE_ECHO_MS);
    if (this.heard.some((h) => h.key === key && h.conn !== conn)) return false;
    this.heard.push({ key, conn, at: now });
    return true;
  }

  #notice(conn, msg) {
    if (!this.#firstHearing(conn, msg)) return;
    let n;
    try {
      n = msg.json();
    } catch {
      return;
    }
    if (n?.type !== "grants-changed" || typeof n.room !== "string") return;
    this.#emit("grants-changed", n);
    const now = ACCESS[n.access] ?? 0;
    const before = ACCESS[n.previous] ?? 0;
    // A right the user did not have (read, or write): tell the app it may join or write.
    if ((now & ~before) !== 0) this.#emit("granted", { room: n.room, access: n.access, previous: n.previous });
    if (now !== before) this.#emit("rooms-changed", n);
    if (now === 0) {
      this.removed ??= new Set();
      this.removed.add(n.room);
    } else {
      this.removed?.delete(n.room);
    }
    // The connection keeps the grant it was decided with: ask again for what is wanted.
    if (this.wanted.has(n.room)) {
      this.#spend();
      this.#reconnect("grants-changed");
    }
  }

  #deliver(room, msg) {
    const entry = this.wanted.get(room);
    if (!entry) return;
    const from = senderOf(this.config.writeSubject, room, msg.subject);
    if (from === null) return;
    let text;
    let id = null;
    try {
      const body = msg.json();
      if (typeof body?.text === "string") {
        text = body.text;
        if (typeof body.id === "string" && body.id.length > 0 && body.id.length <= 64) id = body.id;
      }
    } catch {
      // not JSON: the payload is the text
    }
    if (text === undefined) text = msg.string();
    if (id !== null) {
      // Each message once, although two connections hear it during a swap.
      const key = `${from}\u0000${id}`;
      if (entry.seen.has(key)) return;
      entry.seen.add(key);
      if (entry.seen.size > MAX_SEEN) entry.seen.delete(entry.seen.values().next().value);
    }
    for (const fn of this.handlers.get(room) ?? []) {
      try {
        fn(from, text, { room, id, subject: msg.subject });
      } catch (err) {
        this.#emit("error", err);
      }
    }
  }
}
