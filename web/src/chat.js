// The chat session: rooms, messages, the NATS connection and the access-token refresh.
//
// Rules (docs/src/getting-started/first-client.md, "Client conventions"):
// - The page never sends a token: the websocket listener lifts the HttpOnly `nats_token`
//   cookie into CONNECT. CONNECT `user` carries the rooms, joined by ';'. It is produced by an
//   authenticator function, evaluated on every connect, from the rooms wanted at that moment.
// - Joining or leaving a room opens a NEW connection with the new list, subscribes ALL wanted
//   rooms on it, waits for the server to have processed them, and only then drains the old
//   connection (make before break). Messages carry an id; a room shows each id once, so the
//   overlap of the two connections shows nothing twice.
// - A room whose subscription the server refuses is "refused" (it was never granted) or "lost"
//   (it was granted before). Both leave the list of wanted rooms; the others keep working.
// - On a lame-duck notice the page reconnects the same way. When the connection closes (a
//   kick, a server restart, a deny) it refreshes the access token and reconnects, with backoff.
// - The access token is refreshed before it expires, so every reconnect has a valid cookie.
// - Every connection listens on the user's notice subject (`nats-callout.notice.<user>`): a
//   room granted meanwhile appears in "Rooms you may join" without a reload; a room taken
//   away says "removed from this room" (the lame-duck notice and the kick follow).

import {
  AuthorizationError,
  PermissionViolationError,
  UserAuthenticationExpiredError,
  wsconnect,
} from "@nats-io/nats-core";
import { ApiError } from "./api.js";

export const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** callout.max_rooms of the demo configuration: more rooms in one CONNECT are denied. */
export const MAX_ROOMS = 50;
const MAX_TEXT = 4000;
const MAX_SEEN = 5000;
/** Refresh this long before the access token expires: 30 s, or a quarter of a short lifetime. */
const REFRESH_MARGIN_MS = 30_000;
const DRAIN_TIMEOUT_MS = 3000;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function newId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const isAuthError = (err) =>
  err instanceof AuthorizationError ||
  err instanceof UserAuthenticationExpiredError ||
  /authori[sz]ation violation|authentication expired/i.test(String(err?.message ?? ""));

/** A room's states: joining → joined → lost; joining → refused. */
const WANTED = new Set(["joining", "joined"]);

export class Session extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.user the logged-in user (from the login answer)
   * @param {number} o.expiresInMs how long the current access token is valid
   * @param {string} o.wsUrl websocket URL of nats-server
   * @param {object} o.api the HTTP API (api.js)
   */
  constructor({ user, expiresInMs, wsUrl, api }) {
    super();
    this.user = user;
    this.wsUrl = wsUrl;
    this.api = api;
    /** @type {Map<string, object>} rooms shown in "Your rooms", in join order */
    this.rooms = new Map();
    /** @type {{name: string, read: boolean, write: boolean}[]} from GET /api/rooms */
    this.available = [];
    this.current = null;
    this.status = "connecting";
    this.conn = null; // the connection in use
    this.pending = null; // the connection being opened
    this.ended = false;
    this.refreshes = 0;
    this.connects = 0;
    this.#setExpiry(expiresInMs);
  }

  // ---- events -------------------------------------------------------------------------

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
  #changed() {
    this.#emit("change");
  }
  #notice(text, kind = "info") {
    this.#emit("notice", { text, kind });
  }
  #setStatus(status) {
    if (this.status !== status) {
      this.status = status;
      this.#emit("status", status);
    }
  }

  // ---- life cycle ---------------------------------------------------------------------

  async start() {
    this.#scheduleRefresh();
    await this.loadAvailable();
    this.#reconnect("start");
  }

  /** Call the API; after a 401 (the access cookie expired early), refresh once and retry. */
  async #authed(call) {
    // The cookie is about to expire (a late timer): refresh first rather than provoke a 401.
    if (this.expiresAt - Date.now() < 2000) await this.refresh();
    try {
      return await call();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 401) || this.ended) throw err;
      await this.refresh();
      return call();
    }
  }

  async loadAvailable() {
    try {
      this.available = await this.#authed(() => this.api.rooms());
      for (const room of this.rooms.values()) {
        const entry = this.available.find((r) => r.name === room.name);
        if (entry) room.write = entry.write;
      }
      this.#changed();
    } catch (err) {
      this.#apiFailure(err, "could not load the room list");
    }
  }

  /** Close everything (logout, or the session ended). */
  async stop() {
    this.ended = true;
    clearTimeout(this.refreshTimer);
    const conns = [this.conn, this.pending].filter(Boolean);
    this.conn = this.pending = null;
    this.#setStatus("offline");
    await Promise.all(conns.map((c) => c.nc.close().catch(() => {})));
  }

  #end(reason) {
    if (this.ended) return;
    this.stop();
    this.#emit("ended", reason);
  }

  #apiFailure(err, what) {
    if (err instanceof ApiError && err.status === 401) {
      this.#end(`Your session has ended (${err.code}). Please log in again.`);
    } else {
      this.#notice(`${what}: ${err.message}`, "error");
    }
  }

  // ---- access token ---------------------------------------------------------------------

  #setExpiry(ms) {
    this.lifetimeMs = Math.max(ms, 0);
    this.expiresAt = Date.now() + this.lifetimeMs;
  }

  #margin() {
    return Math.min(REFRESH_MARGIN_MS, this.lifetimeMs / 4);
  }

  #scheduleRefresh() {
    clearTimeout(this.refreshTimer);
    if (this.ended) return;
    const at = this.expiresAt - this.#margin() - Date.now();
    this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), Math.max(at, 1000));
  }

  /** Refresh the access token (one at a time); renews the `nats_token` cookie. */
  refresh() {
    if (!this.refreshing) {
      this.refreshing = (async () => {
        try {
          const answer = await this.api.refresh();
          this.refreshes += 1;
          this.#setExpiry(answer.expiresInMs);
          this.#scheduleRefresh();
          this.#emit("refreshed");
        } catch (err) {
          if (err instanceof ApiError && err.status === 401) {
            this.#end(`Your session has ended (${err.code}). Please log in again.`);
          } else {
            // The server is unreachable: try again soon.
            this.refreshTimer = setTimeout(() => this.refresh().catch(() => {}), 5000);
          }
          throw err;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  // ---- rooms ------------------------------------------------------------------------------

  /** Rooms to ask for on the next connect, in join order. */
  wanted() {
    return [...this.rooms.values()].filter((r) => WANTED.has(r.state)).map((r) => r.name);
  }

  #room(name) {
    let room = this.rooms.get(name);
    if (!room) {
      const entry = this.available.find((r) => r.name === name);
      room = {
        name,
        state: "joining",
        messages: [],
        seen: new Set(),
        unread: 0,
        write: entry ? entry.write : null, // null: not known until a publish is refused
        pendingIds: new Set(),
      };
      this.rooms.set(name, room);
    }
    return room;
  }

  /** Join a room (clicked or typed). Returns an error text, or null. */
  join(rawName) {
    const name = String(rawName ?? "").trim();
    if (!ROOM_NAME.test(name)) {
      return "A room name is 1 to 64 letters, digits, '-' or '_'.";
    }
    const existing = this.rooms.get(name);
    if (existing && WANTED.has(existing.state)) {
      this.select(name);
      return null;
    }
    if (this.wanted().length >= MAX_ROOMS) {
      return `You can be in at most ${MAX_ROOMS} rooms at once; leave one first.`;
    }
    const room = this.#room(name);
    room.state = "joining";
    room.reason = null;
    this.select(name);
    this.#reconnect(`join ${name}`);
    return null;
  }

  /** Leave a room (or dismiss a refused or lost one). */
  leave(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    const wasWanted = WANTED.has(room.state);
    this.rooms.delete(name);
    if (this.current === name) {
      this.current = this.rooms.keys().next().value ?? null;
      if (this.current) this.rooms.get(this.current).unread = 0;
    }
    this.#changed();
    // Reconnect so the new grant no longer carries the room.
    if (wasWanted) this.#reconnect(`leave ${name}`);
  }

  select(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    this.current = name;
    room.unread = 0;
    this.#changed();
  }

  /** Send a message to the current room. Returns an error text, or null. */
  send(rawText) {
    const text = String(rawText ?? "").trim();
    const room = this.rooms.get(this.current);
    if (!text) return "Type a message first.";
    if (text.length > MAX_TEXT) return `A message has at most ${MAX_TEXT} characters.`;
    if (!room || room.state !== "joined") return "Join the room first.";
    if (room.write === false) return `You may read ${room.name} but not write in it.`;
    const conn = this.conn;
    if (!conn || this.status !== "connected") return "Not connected; try again in a moment.";
    const id = newId();
    try {
      conn.nc.publish(`chat.${room.name}.${this.user}`, JSON.stringify({ id, text }));
    } catch (err) {
      return `Not sent: ${err.message}`;
    }
    room.pendingIds.add(id);
    this.#emit("message", {
      room: room.name,
      message: { id, sender: this.user, text, at: new Date(), pending: true },
    });
    return null;
  }

  // ---- messages -------------------------------------------------------------------------

  #onMessage(name, msg) {
    const room = this.rooms.get(name);
    if (!room) return;
    // The server guarantees the last subject token is the sender (it only lets U publish
    // to chat.R.U); the body is never trusted for it.
    const tokens = msg.subject.split(".");
    if (tokens.length !== 3 || tokens[0] !== "chat" || tokens[1] !== name) return;
    const sender = tokens[2];
    let body;
    try {
      body = msg.json();
    } catch {
      return;
    }
    if (
      typeof body?.id !== "string" ||
      body.id.length === 0 ||
      body.id.length > 64 ||
      typeof body.text !== "string"
    ) {
      return;
    }
    const key = `${sender}\u0000${body.id}`;
    if (room.seen.has(key)) return; // exactly once, across overlapping connections
    room.seen.add(key);
    if (room.seen.size > MAX_SEEN) room.seen.delete(room.seen.values().next().value);
    const message = { id: body.id, sender, text: body.text.slice(0, MAX_TEXT), at: new Date() };
    room.messages.push(message);
    if (sender === this.user && room.pendingIds.delete(body.id)) {
      this.#emit("delivered", { room: name, id: body.id });
      return;
    }
    if (this.current !== name) {
      room.unread += 1;
      this.#changed();
    }
    this.#emit("message", { room: name, message });
  }

  // ---- connections ------------------------------------------------------------------------

  /** Ask for a new connection with the current room list; requests made meanwhile coalesce. */
  #reconnect(why) {
    if (this.ended) return;
    this.reconnectWanted = true;
    this.lastReason = why;
    if (!this.loop) {
      this.loop = this.#connectLoop().finally(() => {
        this.loop = null;
      });
    }
  }

  async #connectLoop() {
    let failures = 0;
    while (this.reconnectWanted && !this.ended) {
      this.reconnectWanted = false;
      try {
        await this.#swap();
        failures = 0;
      } catch (err) {
        if (this.ended) return;
        failures += 1;
        this.reconnectWanted = true;
        if (isAuthError(err)) {
          if (!this.refreshedForRetry) {
            // A deny: refresh the token, then try again at once.
            this.forceRefresh = true;
            continue;
          }
          // Denied with a fresh token: a room just asked for made the whole request
          // invalid (for example a reserved name). Refuse those rooms, keep the others.
          const joining = [...this.rooms.values()].filter((r) => r.state === "joining");
          if (joining.length > 0) {
            for (const room of joining) this.#refuse(room, "the server refused the connection with it");
            failures = 0;
            continue;
          }
        }
        this.#setStatus("reconnecting");
        const wait = Math.min(30_000, 500 * 2 ** Math.min(failures - 1, 6));
        await sleep(wait);
      }
    }
  }

  /** Open a connection with the wanted rooms, subscribe them all, then drain the old one. */
  async #swap() {
    this.refreshedForRetry = false;
    if (this.forceRefresh || this.expiresAt - Date.now() < this.#margin()) {
      await this.refresh();
      this.forceRefresh = false;
      this.refreshedForRetry = true;
    }
    if (this.ended) return;
    if (!this.conn) this.#setStatus("connecting");
    const conn = { nc: null, subs: new Map(), sent: [] };
    this.pending = conn;
    try {
      conn.nc = await wsconnect({
        servers: this.wsUrl,
        name: `nats-callout chat (${this.user})`,
        // Evaluated on every connect: the rooms wanted right now. No token: the cookie.
        authenticator: () => {
          conn.sent = this.wanted();
          return { user: conn.sent.join(";") };
        },
        // This page reconnects itself (make before break, token refresh first).
        reconnect: false,
        ignoreClusterUpdates: true,
        timeout: 10_000,
        pingInterval: 20_000,
        maxPingOut: 2,
      });
    } catch (err) {
      if (this.pending === conn) this.pending = null;
      throw err;
    }
    if (this.ended || this.pending !== conn) {
      conn.nc.close().catch(() => {});
      return;
    }
    this.connects += 1;
    this.#watch(conn);
    conn.nc.subscribe(`nats-callout.notice.${this.user}`, {
      callback: (err, msg) => {
        if (!err) this.#onGrantNotice(conn, msg);
      },
    });
    try {
      for (const name of conn.sent) {
        if (WANTED.has(this.rooms.get(name)?.state)) this.#subscribe(conn, name);
      }
      // The server answers a SUB it refuses with -ERR before the PONG to this flush.
      await conn.nc.flush();
    } catch (err) {
      if (this.pending === conn) this.pending = null;
      conn.nc.close().catch(() => {});
      throw err;
    }
    if (this.ended) return;
    for (const name of conn.sent) {
      const room = this.rooms.get(name);
      if (room && conn.subs.has(name) && room.state === "joining") {
        room.state = "joined";
        room.reason = null;
      }
    }
    const old = this.conn;
    this.conn = conn;
    this.pending = null;
    this.#setStatus("connected");
    this.#changed();
    this.#emit("connected", { rooms: conn.sent });
    if (old) this.#retire(old);
    // On a reconnect the grants may have changed since the list was loaded.
    if (this.connects > 1) this.loadAvailable();
  }

  #subscribe(conn, name) {
    const sub = conn.nc.subscribe(`chat.${name}.>`, {
      callback: (err, msg) => {
        if (err) {
          conn.subs.delete(name);
          this.#subscriptionFailed(conn, name, err);
        } else {
          this.#onMessage(name, msg);
        }
      },
    });
    conn.subs.set(name, sub);
  }

  /** `{"type": "grants-changed", room, access, previous}` on the user's notice subject. */
  #onGrantNotice(conn, msg) {
    if (conn !== this.conn || this.ended) return; // told once, on the connection in use
    let notice;
    try {
      notice = msg.json();
    } catch {
      return;
    }
    if (notice?.type !== "grants-changed" || typeof notice.room !== "string") return;
    const room = this.rooms.get(notice.room);
    if (notice.access === "none") {
      if (room && WANTED.has(room.state)) {
        // The kick that follows closes the connection; the room is lost now.
        room.state = "lost";
        room.reason = notice.source === "rooms" ? "removed from this room" : "your access was removed";
        this.#notice(`You lost access to ${notice.room}: ${room.reason}.`, "error");
      }
    } else if (!room || !WANTED.has(room.state)) {
      this.#notice(`You may now join ${notice.room} (${notice.access}).`);
    } else if (notice.access.includes("write") !== room.write) {
      room.write = notice.access.includes("write");
    }
    this.loadAvailable();
  }

  // ---- rooms as data ------------------------------------------------------------------

  /** Make a room (the caller owns it) and join it. Resolves to an error text, or null. */
  async createRoom(rawName, open) {
    const name = rawName.trim();
    if (!ROOM_NAME.test(name)) return "A room name is 1 to 64 letters, digits, '-' or '_'.";
    try {
      await this.#authed(() => this.api.createRoom(name, open ? "open" : "invite"));
    } catch (err) {
      return err instanceof ApiError ? err.message : String(err);
    }
    await this.loadAvailable();
    return this.join(name);
  }

  /** An owner's (or an admin's) call on a room in data; resolves to an error text, or null. */
  async manage(call) {
    try {
      await this.#authed(call);
      await this.loadAvailable();
      return null;
    } catch (err) {
      return err instanceof ApiError ? err.message : String(err);
    }
  }

  async members(room) {
    return this.#authed(() => this.api.members(room));
  }

  async openRooms() {
    return this.#authed(() => this.api.openRooms());
  }

  /** Join an open room (a member from now on), then connect to it. */
  async joinOpen(room) {
    const error = await this.manage(() => this.api.joinOpen(room));
    return error ?? this.join(room);
  }

  #subscriptionFailed(conn, name, err) {
    if (conn !== this.conn && conn !== this.pending) return; // an old connection
    const room = this.rooms.get(name);
    if (!room || !(err instanceof PermissionViolationError)) return;
    if (room.state === "joining") {
      this.#refuse(room, "you may not read it");
    } else if (room.state === "joined") {
      room.state = "lost";
      room.reason = "your access was removed";
      this.#notice(`You lost access to ${name}.`, "error");
      this.#changed();
    }
  }

  #refuse(room, reason) {
    room.state = "refused";
    room.reason = reason;
    this.#notice(`You may not join ${room.name}: ${reason}. Your other rooms keep working.`, "error");
    this.#changed();
  }

  /** Drain a connection no longer in use; close it if draining takes too long. */
  #retire(conn) {
    const nc = conn.nc;
    Promise.race([nc.drain(), sleep(DRAIN_TIMEOUT_MS)])
      .catch(() => {})
      .finally(() => nc.close().catch(() => {}));
  }

  #watch(conn) {
    const nc = conn.nc;
    (async () => {
      for await (const s of nc.status()) {
        if (s.type === "ldm" && (conn === this.conn || conn === this.pending)) {
          // Lame-duck notice: the grant may have changed. Reconnect with the current list
          // (if it reaches the connection still being opened, once that one is done).
          this.#reconnect("lame-duck notice");
        } else if (s.type === "error" && conn === this.conn) {
          this.#serverError(s.error);
        }
      }
    })().catch(() => {});
    nc.closed().then((err) => {
      if (conn !== this.conn || this.ended) return;
      // Kicked, denied, expired or the server went away: refresh, then reconnect.
      this.conn = null;
      this.#setStatus("reconnecting");
      this.forceRefresh = true;
      this.#reconnect(err ? `closed: ${err.message}` : "closed");
    });
  }

  #serverError(err) {
    if (err instanceof PermissionViolationError && err.operation === "publish") {
      const name = err.subject.split(".")[1];
      const room = this.rooms.get(name);
      if (room) {
        room.write = false;
        for (const id of room.pendingIds) this.#emit("failed", { room: name, id });
        room.pendingIds.clear();
        this.#notice(`You may read ${name} but not write in it.`, "error");
        this.#changed();
      }
    }
  }
}
