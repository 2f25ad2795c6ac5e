// The admin console (admins only): live connections, the permission set's reload status with
// each file:line problem, the latest denies, revoke and token-reset actions, explain (what a
// user would get in some rooms, and why), and a live chart of authorizations per second and
// p99 decision time from the service's own numbers.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { more, ApiError } from "./api.js";
import { $, el, when } from "./dom.js";

const POINTS = 60;
const EVERY_MS = 1000;
/** The rooms in data change rarely and may be long: every tenth tick, and after an action
 * here. (The permission summary is small and an admin who just saved a file wants its
 * problem at once: every tick.) */
const SLOW_EVERY = 10;

export class Console {
  constructor() {
    this.timer = null;
    this.last = null;
    this.series = [[], [], []];
    $("console-revoke").addEventListener("submit", (e) => this.act(e, "revoke"));
    $("console-reset").addEventListener("submit", (e) => this.act(e, "reset"));
    $("console-explain").addEventListener("submit", (e) => this.explain(e));
    $("console-rooms-refresh").addEventListener("click", () => this.dataRooms().catch(() => {}));
  }

  start() {
    if (this.timer) return;
    if (!this.chart) this.chart = this.makeChart();
    const tick = () => this.poll().catch(() => {});
    tick();
    this.timer = setInterval(tick, EVERY_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  makeChart() {
    const box = $("console-chart");
    return new uPlot(
      {
        width: Math.max(320, box.clientWidth || 640),
        height: 220,
        legend: { show: true },
        scales: { x: { time: true }, rate: { auto: true }, ms: { auto: true } },
        series: [
          {},
          { label: "authorizations/s", scale: "rate", stroke: "#1f5f8b", width: 2 },
          { label: "p99 ms", scale: "ms", stroke: "#a4161a", width: 2 },
        ],
        axes: [{}, { scale: "rate" }, { scale: "ms", side: 1, grid: { show: false } }],
      },
      this.series,
      box,
    );
  }

  async poll() {
    const m = await more.metrics();
    if (this.last && m.at > this.last.at) {
      const dt = m.at - this.last.at;
      const n = m.allowed + m.denied + m.refused - (this.last.allowed + this.last.denied + this.last.refused);
      this.push(m.at, n / dt, m.p99Ms);
    } else if (!this.last) {
      this.push(m.at, 0, m.p99Ms);
    }
    if (!this.last || m.at > this.last.at) this.last = m;
    $("console-totals").textContent = `allowed ${m.allowed} · denied ${m.denied} · refused ${m.refused} · p99 ${m.p99Ms.toFixed(2)} ms`;
    const slow = (this.ticks = (this.ticks ?? 0) + 1) % SLOW_EVERY === 1;
    await Promise.all([
      this.connections(),
      this.denies(),
      this.permissions(),
      ...(slow ? [this.dataRooms()] : []),
    ]);
  }

  push(at, rate, p99) {
    const [x, r, p] = this.series;
    x.push(at);
    r.push(rate);
    p.push(p99);
    for (const s of this.series) if (s.length > POINTS) s.shift();
    this.chart.setData(this.series);
    $("console-chart").dataset.points = String(x.length);
  }

  async connections() {
    const { enforcement, connections } = await more.connections();
    $("console-connections-note").textContent = enforcement
      ? `${connections.length} live connection(s)`
      : "live enforcement is off (no nats.system_user): connections are not tracked";
    $("console-connections").replaceChildren(
      ...connections.map((c) =>
        el(
          "tr",
          { dataset: { user: c.user } },
          el("td", { text: c.user }),
          el("td", { text: c.rooms.join(", ") || "—" }),
          el("td", { text: `${c.server.slice(0, 8)}… #${c.cid}` }),
          el("td", { text: c.device ?? "—" }),
          el("td", { text: when(c.since) }),
        ),
      ),
    );
  }

  async permissions() {
    const p = await more.permissions();
    $("console-permissions").textContent =
      `${p.users} users, ${p.rooms} rooms; loaded ${when(p.loadedAt)}; ` +
      `${p.reloadsOk} reloads, ${p.reloadsFailed} failed`;
    const errors = p.lastErrors ?? [];
    $("console-errors").replaceChildren(...errors.map((e) => el("li", { class: "error", text: e })));
    $("console-errors").hidden = errors.length === 0;
  }

  async dataRooms() {
    const rooms = await more.dataRooms();
    $("console-rooms-note").textContent = `${rooms.length} room(s) in data`;
    const member = (room, m) =>
      el(
        "li",
        { dataset: { user: m.userId } },
        `${m.userId} (${m.access}${m.owner ? ", owner" : ""}) `,
        el("button", {
          type: "button",
          text: "Remove",
          "aria-label": `Remove ${m.userId} from ${room}`,
          onclick: () => this.roomAction(() => more.removeMember(room, m.userId)),
        }),
      );
    $("console-rooms").replaceChildren(
      ...rooms.map((r) =>
        el(
          "tr",
          { dataset: { room: r.name } },
          el("td", { text: r.name }),
          el("td", { text: r.owner }),
          el("td", { text: r.join }),
          el("td", {}, el("ul", { class: "members" }, ...r.members.map((m) => member(r.name, m)))),
          el(
            "td",
            {},
            el("button", {
              type: "button",
              text: "Delete",
              "aria-label": `Delete room ${r.name}`,
              onclick: () => this.roomAction(() => more.deleteRoom(r.name)),
            }),
          ),
        ),
      ),
    );
  }

  async roomAction(act) {
    try {
      await act();
      $("console-rooms-note").textContent = "done";
    } catch (err) {
      $("console-rooms-note").textContent = err instanceof ApiError ? err.message : String(err);
    }
    await this.dataRooms().catch(() => {});
  }

  async denies() {
    const list = await more.denies();
    $("console-denies").replaceChildren(
      ...list.slice(0, 20).map((d) =>
        el(
          "tr",
          {},
          el("td", { text: when(d.at) }),
          el("td", { text: d.reason }),
          el("td", { text: d.user ?? "—" }),
          el("td", { text: d.kind || "—" }),
          el("td", { text: d.detail }),
        ),
      ),
    );
  }

  async act(event, what) {
    event.preventDefault();
    const form = event.currentTarget;
    const user = form.querySelector("input").value.trim();
    const out = form.querySelector(".result");
    if (!user) return;
    try {
      if (what === "revoke") {
        const r = await more.revoke({ userId: user });
        out.textContent = `${user}: ${r.revokedSessions} session(s) ended, live connections closed`;
      } else {
        const r = await more.tokenReset({ users: [user], reason: "admin console" });
        out.textContent = `${user}: ${r.affected ?? 0} connection(s) asked to re-authorize`;
      }
    } catch (err) {
      out.textContent = `${user}: ${err instanceof ApiError ? err.message : err}`;
    }
  }

  async explain(event) {
    event.preventDefault();
    const user = $("console-explain-user").value.trim();
    const rooms = $("console-explain-rooms").value.split(/[;,\s]+/).filter(Boolean);
    const out = $("console-explain").querySelector(".result");
    if (!user) return;
    try {
      const e = await more.explain({ userId: user, rooms });
      const revoked = (e.revocations ?? []).map((r) => `${r.reason} before ${when(r.before)}`);
      out.textContent = [
        e.denied ? `${user}: every connection is denied (${e.denied})` : `${user}: ${e.sessions?.length ?? 0} session(s)`,
        ...revoked,
      ].join("; ");
      $("console-explained").replaceChildren(
        ...e.rooms.map((r) =>
          el(
            "tr",
            { dataset: { room: r.room, reason: r.reason } },
            el("td", { text: r.room }),
            el("td", { text: r.access }),
            el("td", { text: r.reason }),
            el("td", { text: r.source }),
          ),
        ),
      );
    } catch (err) {
      out.textContent = `${user}: ${err instanceof ApiError ? err.message : err}`;
    }
  }
}
