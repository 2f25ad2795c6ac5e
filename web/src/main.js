// The page: login, the room lists, the message lists, the send box. State lives in Session
// (chat.js); this file only renders it and forwards what the user does.

import { api, ApiError, more } from "./api.js";
import { Session } from "./chat.js";
import { $, el } from "./dom.js";
import { Account } from "./account.js";
import { Console } from "./console.js";

/** A hint (not a secret) that this browser had a session, so a refresh is worth trying. */
const HINT = "nats-callout.had-session";
const MAX_NOTICES = 4;

let wsUrl = null;
let session = null;
let account = null;
let adminConsole = null;
/** Per-room message list elements. */
const lists = new Map();
/** data-focus key to focus after the next render. */
let focusNext = null;
/** The room whose members "Manage this room" shows. */
let membersOf = null;

const STATUS_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  offline: "Offline",
};

const STATE_TEXT = {
  joining: "joining…",
  joined: "",
  refused: "refused",
  lost: "access lost",
};


// ---- who this page is ---------------------------------------------------------------------

/** The `clientId` the service lets the page log in with (`GET /api/config`), or null. */
let pageClientId = null;

/** This browser as a device id the service accepts: "chrome-linux", "firefox-windows", ... */
function deviceName() {
  const ua = navigator.userAgent;
  const browser =
    [
      ["edge", /Edg\//],
      ["opera", /OPR\//],
      ["firefox", /Firefox\//],
      ["chrome", /Chrom(e|ium)\//],
      ["safari", /Safari\//],
    ].find(([, re]) => re.test(ua))?.[0] ?? "browser";
  const os =
    [
      ["android", /Android/],
      ["ios", /iPhone|iPad/],
      ["windows", /Windows/],
      ["macos", /Mac OS X/],
      ["linux", /Linux|X11/],
    ].find(([, re]) => re.test(ua))?.[0] ?? "unknown";
  return `${browser}-${os}`;
}

// ---- notices ----------------------------------------------------------------------------

function notice(text, kind = "info") {
  const box = $("notices");
  const item = el(
    "p",
    { class: `notice notice-${kind}` },
    el("span", { text }),
    el("button", {
      type: "button",
      class: "dismiss",
      "aria-label": "Dismiss notice",
      text: "×",
      onclick: () => item.remove(),
    }),
  );
  box.append(item);
  while (box.children.length > MAX_NOTICES) box.firstElementChild.remove();
}

function clearNotices() {
  $("notices").replaceChildren();
}

// ---- login ------------------------------------------------------------------------------

function showLogin(message = "") {
  hideViews();
  $("chat-view").hidden = true;
  $("whoami").hidden = true;
  $("login-view").hidden = false;
  $("login-error").textContent = message;
  renderStatus("offline");
  $("username").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const username = $("username").value.trim();
  const password = $("password").value;
  const error = $("login-error");
  if (!username || !password) {
    error.textContent = "Enter your user name and password.";
    return;
  }
  const button = event.submitter ?? $("login-form").querySelector("button");
  button.disabled = true;
  error.textContent = "";
  try {
    const answer = await api.login(username, password, { clientId: pageClientId, deviceId: deviceName() });
    localStorage.setItem(HINT, "1");
    $("password").value = "";
    startSession(answer.user);
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      error.textContent = "Wrong user name or password.";
    } else if (err instanceof ApiError && err.status === 429) {
      error.textContent = "Too many attempts. Wait a minute and try again.";
    } else {
      error.textContent = `Could not log in: ${err.message}`;
    }
    $("password").focus();
  } finally {
    button.disabled = false;
  }
}

/** "Log in with …" links, one per identity provider the server trusts for logins. */
function renderProviders(providers) {
  const box = $("provider-logins");
  box.replaceChildren(
    ...providers.map((p) =>
      el("a", {
        class: "button provider-login",
        href: `/api/auth/oidc/${encodeURIComponent(p.name)}/login`,
        dataset: { provider: p.name },
        text: `Log in with ${p.label}`,
      }),
    ),
  );
  box.hidden = providers.length === 0;
}

const LOGIN_ERRORS = {
  "unknown-user": "Your account at the identity provider has no access to this chat.",
  "login-expired": "The login took too long or was interrupted. Please try again.",
  "provider-refused": "The identity provider refused the login.",
  "provider-unreachable": "The identity provider cannot be reached. Try again later.",
};

/** A provider login that came back with `?loginError=code`: its message (and a clean URL). */
function takeLoginError() {
  const params = new URLSearchParams(location.search);
  const code = params.get("loginError");
  if (!code) return "";
  history.replaceState(null, "", location.pathname);
  return LOGIN_ERRORS[code] ?? `Could not log in (${code}).`;
}

async function onLogout() {
  const s = session;
  session = null;
  localStorage.removeItem(HINT);
  if (s) await s.stop();
  let providerLogout = null;
  try {
    providerLogout = await api.logout();
  } catch {
    // the session may already be gone; the cookies are cleared either way
  }
  if (providerLogout) {
    // Our session is over; end the provider's too (it sends the browser back here).
    location.assign(providerLogout);
    return;
  }
  resetChat();
  clearNotices();
  showLogin("");
  notice("You are logged out.");
}

// ---- views: chat, account, console ---------------------------------------------------------

const VIEWS = { chat: "chat-view", account: "account-view", console: "console-view" };

function showView(name) {
  for (const [view, id] of Object.entries(VIEWS)) {
    $(id).hidden = view !== name;
    $(`show-${view}`).setAttribute("aria-pressed", String(view === name));
  }
  if (name === "account") account.load();
  if (name === "console") adminConsole.start();
  else adminConsole.stop();
}

/** The console button for admins (roles from the files, asked each time a session starts). */
async function offerConsole() {
  $("show-console").hidden = true;
  try {
    const me = await more.me();
    const roles = me.user?.roles ?? [];
    $("show-console").hidden = !(roles.includes("admin") || roles.includes("sysadmin"));
  } catch {
    // no console without knowing the roles
  }
}

function hideViews() {
  adminConsole.stop();
  $("account-view").hidden = true;
  $("console-view").hidden = true;
}

// ---- the chat -----------------------------------------------------------------------------

function resetChat() {
  for (const list of lists.values()) list.remove();
  lists.clear();
  $("joined-rooms").replaceChildren();
  $("available-rooms").replaceChildren();
  $("open-rooms").replaceChildren();
  $("room-manage").hidden = true;
  membersOf = null;
  $("join-error").textContent = "";
  $("send-error").textContent = "";
}

function startSession(user) {
  resetChat();
  clearNotices();
  session = new Session({ user, wsUrl });
  const s = session;
  const mine = (fn) => (event) => {
    if (session === s) fn(event.detail);
  };
  s.addEventListener("change", mine(render));
  s.addEventListener("status", mine(() => render()));
  s.addEventListener("notice", mine(({ text, kind }) => notice(text, kind)));
  s.addEventListener("connected", mine(() => showOpenRooms()));
  s.addEventListener("message", mine(({ room, message }) => appendMessage(room, message)));
  s.addEventListener("delivered", mine(({ room, id }) => markMessage(room, id, "delivered")));
  s.addEventListener("failed", mine(({ room, id }) => markMessage(room, id, "failed")));
  s.addEventListener(
    "ended",
    mine((reason) => {
      session = null;
      localStorage.removeItem(HINT);
      resetChat();
      clearNotices();
      showLogin(reason);
    }),
  );
  $("login-view").hidden = true;
  showView("chat");
  $("whoami").hidden = false;
  $("user-name").textContent = user;
  offerConsole();
  render();
  $("join-name").focus();
  s.start();
}

function listFor(name) {
  let list = lists.get(name);
  if (!list) {
    list = el("ol", {
      class: "messages",
      role: "log",
      "aria-label": `Messages in ${name}`,
      dataset: { room: name },
      hidden: true,
    });
    $("message-lists").append(list);
    lists.set(name, list);
  }
  return list;
}

function appendMessage(room, m) {
  const list = listFor(room);
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const item = el(
    "li",
    {
      class: m.pending ? "msg pending" : "msg",
      dataset: { id: m.id, sender: m.sender },
    },
    el("span", { class: "sender", text: m.sender }),
    el("time", {
      datetime: m.at.toISOString(),
      text: m.at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }),
    }),
    el("p", { class: "text", text: m.text }),
    m.pending ? el("span", { class: "delivery", text: "sending…" }) : null,
  );
  if (m.sender === session?.user) item.classList.add("own");
  list.append(item);
  if (nearBottom || m.sender === session?.user) list.scrollTop = list.scrollHeight;
}

function markMessage(room, id, how) {
  const item = listFor(room).querySelector(`li[data-id="${CSS.escape(id)}"]`);
  if (!item) return;
  item.classList.remove("pending");
  item.querySelector(".delivery")?.remove();
  if (how === "failed") {
    item.classList.add("failed");
    item.append(el("span", { class: "delivery", text: "not delivered" }));
  }
}

function renderStatus(status) {
  const box = $("conn-status");
  box.dataset.status = status;
  box.dataset.connects = String(session?.connects ?? 0);
  box.textContent = STATUS_TEXT[status] ?? status;
}

function roomItem(room) {
  const current = session.current === room.name;
  const stateText = STATE_TEXT[room.state];
  const unread =
    room.unread > 0
      ? el(
          "span",
          { class: "unread", dataset: { count: String(room.unread) } },
          el("span", { "aria-hidden": "true", text: String(room.unread) }),
          el("span", { class: "sr-only", text: `, ${room.unread} unread` }),
        )
      : null;
  return el(
    "li",
    { dataset: { room: room.name, state: room.state }, class: current ? "current" : "" },
    el(
      "button",
      {
        type: "button",
        class: "room-button",
        "aria-current": current ? "true" : null,
        dataset: { focus: `select:${room.name}` },
        onclick: () => {
          session.select(room.name);
          focusNext = "message";
        },
      },
      el("span", { class: "room-name", text: room.name }),
      stateText ? el("span", { class: "room-badge", text: stateText }) : null,
      unread,
    ),
  );
}

function availableItem(entry) {
  const readOnly = entry.read && !entry.write;
  return el(
    "li",
    { dataset: { room: entry.name } },
    el(
      "button",
      {
        type: "button",
        class: "join-button",
        "aria-label": `Join ${entry.name}${readOnly ? " (read only)" : ""}`,
        dataset: { focus: `join:${entry.name}` },
        onclick: () => join(entry.name),
      },
      el("span", { class: "room-name", text: entry.name }),
      readOnly ? el("span", { class: "room-badge", text: "read only" }) : null,
      el("span", { class: "join-mark", "aria-hidden": "true", text: "Join" }),
    ),
  );
}

// ---- rooms as data ------------------------------------------------------------------------

/** The current room when it is a room in data this user owns (its creator). */
function ownedRoom() {
  const name = session?.current;
  const entry = name ? session.available.find((r) => r.name === name) : null;
  return entry?.owner && entry.owner === session.user ? name : null;
}

async function showMembers(force = false) {
  const s = session;
  const name = ownedRoom();
  $("room-manage").hidden = !name;
  if (!name || (!force && membersOf === name)) return;
  membersOf = name;
  try {
    const members = await s.members(name);
    if (session !== s || session.current !== name) return;
    $("room-members").replaceChildren(
      ...members.map((m) =>
        el(
          "li",
          { dataset: { user: m.userId } },
          `${m.userId} (${m.access}${m.owner ? ", owner" : ""}) `,
          m.userId === s.user
            ? null
            : el("button", {
                type: "button",
                text: "Remove",
                "aria-label": `Remove ${m.userId}`,
                onclick: () => manage((c) => c.removeMember(name, m.userId)),
              }),
        ),
      ),
    );
  } catch (err) {
    $("manage-error").textContent = err?.message ?? String(err);
  }
}

async function manage(call) {
  const error = await session.manage(call);
  $("manage-error").textContent = error ?? "";
  await showMembers(true);
  await showOpenRooms();
}

async function showOpenRooms() {
  const s = session;
  if (!s) return;
  let rooms = [];
  try {
    rooms = await s.openRooms();
  } catch {
    return; // shown again at the next connect
  }
  if (session !== s) return;
  $("open-rooms").replaceChildren(
    ...rooms.map((r) =>
      el(
        "li",
        { dataset: { room: r.name } },
        el(
          "button",
          {
            type: "button",
            class: "join-button",
            "aria-label": `Join open room ${r.name}`,
            onclick: async () => {
              const error = await s.joinOpen(r.name);
              $("join-error").textContent = error ?? "";
              await showOpenRooms();
            },
          },
          el("span", { class: "room-name", text: r.name }),
          el("span", { class: "join-mark", "aria-hidden": "true", text: "Join" }),
        ),
      ),
    ),
  );
}

function join(name) {
  const error = session.join(name);
  $("join-error").textContent = error ?? "";
  if (!error) focusNext = `select:${name.trim()}`;
  render();
  return error;
}

function render() {
  if (!session) return;
  const s = session;
  const focused = document.activeElement?.dataset?.focus ?? null;
  renderStatus(s.status);

  $("joined-rooms").replaceChildren(...[...s.rooms.values()].map(roomItem));
  $("no-rooms").hidden = s.rooms.size > 0;
  const wanted = new Set(s.wanted());
  $("available-rooms").replaceChildren(
    ...s.available.filter((r) => r.read && !wanted.has(r.name)).map(availableItem),
  );

  for (const [name, list] of lists) {
    if (!s.rooms.has(name)) {
      list.remove();
      lists.delete(name);
    }
  }
  const room = s.current ? s.rooms.get(s.current) : null;
  for (const [name, list] of lists) list.hidden = name !== s.current;
  if (room) listFor(room.name).hidden = false;

  $("room-title").textContent = room ? room.name : "No room selected";
  const state = $("room-state");
  state.dataset.state = room?.state ?? "";
  state.textContent = !room
    ? "Pick a room on the left, or join one by name."
    : room.state === "joining"
      ? "Joining…"
      : room.state === "refused"
        ? `You may not join ${room.name}: ${room.reason}.`
        : room.state === "lost"
          ? `You lost access to ${room.name}: ${room.reason}. Earlier messages stay visible.`
          : room.write === false
            ? "Read only: you may read this room but not write in it."
            : "";
  const gone = room && (room.state === "refused" || room.state === "lost");
  const leave = $("leave");
  leave.hidden = !room;
  if (room) {
    leave.textContent = gone ? "Remove" : "Leave";
    leave.setAttribute("aria-label", `${gone ? "Remove" : "Leave"} ${room.name}`);
  }
  $("rejoin").hidden = !gone;
  if (gone) $("rejoin").setAttribute("aria-label", `Try to join ${room.name} again`);

  showMembers();

  const canSend = !!room && room.state === "joined" && room.write !== false && s.status === "connected";
  $("message").disabled = !canSend;
  $("send").disabled = !canSend;
  $("message").placeholder = canSend ? `Message ${room.name}` : "";

  const key = focusNext ?? focused;
  focusNext = null;
  if (key === "message") {
    if (canSend) $("message").focus();
    else $("room-title").focus();
  } else if (key) {
    const target = document.querySelector(`[data-focus="${CSS.escape(key)}"]`);
    if (target) target.focus();
    else if (focused && document.activeElement === document.body) $("room-title").focus();
  }
}

function onJoin(event) {
  event.preventDefault();
  const input = $("join-name");
  if (!join(input.value)) input.value = "";
}

async function onCreate(event) {
  event.preventDefault();
  if (!session) return;
  const input = $("create-name");
  const error = await session.createRoom(input.value, $("create-open").checked);
  $("create-error").textContent = error ?? "";
  if (!error) {
    focusNext = `select:${input.value.trim()}`;
    input.value = "";
    render();
  }
}

function onInvite(event) {
  event.preventDefault();
  const name = ownedRoom();
  const user = $("invite-user").value.trim();
  if (!name || !user) return;
  const access = $("invite-access").value;
  manage((c) => c.invite(name, user, access)).then(() => {
    if (!$("manage-error").textContent) $("invite-user").value = "";
  });
}

function onSend(event) {
  event.preventDefault();
  if (!session) return;
  const input = $("message");
  const error = session.send(input.value);
  $("send-error").textContent = error ?? "";
  if (!error) input.value = "";
  input.focus();
}

// ---- start ------------------------------------------------------------------------------

async function boot() {
  account = new Account({});
  adminConsole = new Console();
  for (const view of Object.keys(VIEWS)) $(`show-${view}`).addEventListener("click", () => showView(view));
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("join-form").addEventListener("submit", onJoin);
  $("send-form").addEventListener("submit", onSend);
  $("create-form").addEventListener("submit", onCreate);
  $("invite-form").addEventListener("submit", onInvite);
  $("delete-room").addEventListener("click", () => {
    const name = ownedRoom();
    if (name) manage((c) => c.deleteRoom(name)).then(() => session?.leave(name));
  });
  $("leave").addEventListener("click", () => {
    if (session?.current) {
      session.leave(session.current);
      focusNext = session.current ? `select:${session.current}` : null;
      render();
      if (!session.current) $("join-name").focus();
    }
  });
  $("rejoin").addEventListener("click", () => session?.current && join(session.current));

  let config;
  try {
    config = await api.config();
  } catch (err) {
    showLogin(`The server cannot be reached: ${err.message}`);
    return;
  }
  // Built from location.hostname, so the cookie and the websocket's allowed origin match;
  // behind a proxy the server names the URL (`http.websocket_url`).
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  wsUrl = config.websocketUrl ?? `${scheme}://${location.hostname}:${config.websocketPort}`;
  renderProviders(config.providers);
  pageClientId = config.pageClientId;
  const loginError = takeLoginError();
  if (loginError) {
    showLogin(loginError);
  } else if (config.user) {
    localStorage.setItem(HINT, "1");
    startSession(config.user);
  } else if (localStorage.getItem(HINT)) {
    // The access cookie expired while the page was closed; the refresh cookie may still work.
    try {
      const answer = await api.refresh();
      startSession(answer.user);
    } catch {
      localStorage.removeItem(HINT);
      showLogin("Your session has ended. Please log in again.");
    }
  } else {
    showLogin();
  }
}

boot();
