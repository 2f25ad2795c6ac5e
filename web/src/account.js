// The account page: my sessions by application and device, "sign out" per row and "sign out
// everywhere else"; the current session is marked and cannot be signed out from here (that
// is "Log out").

import { more, ApiError } from "./api.js";
import { $, el, when } from "./dom.js";

export class Account {
  constructor({ onError }) {
    this.onError = onError;
    $("account-refresh").addEventListener("click", () => this.load());
    $("account-others").addEventListener("click", () => this.signOutOthers());
  }

  async load() {
    const body = $("account-sessions");
    try {
      const list = await more.sessions();
      this.list = list;
      body.replaceChildren(...list.map((s) => this.row(s)));
      $("account-others").disabled = !list.some((s) => !s.current);
      $("account-error").textContent = "";
    } catch (err) {
      $("account-error").textContent = `Could not list your sessions: ${err.message}`;
    }
  }

  row(s) {
    const label = s.clientId ?? "(no application)";
    return el(
      "tr",
      { dataset: { session: s.sessionId, current: s.current ? "yes" : "no" }, class: s.current ? "current" : "" },
      el("td", { text: label }),
      el("td", { text: s.deviceId ?? "—" }),
      el("td", { text: when(s.createdAt) }),
      el("td", { text: when(s.lastUsedAt) }),
      el("td", { text: s.address ?? "—" }),
      el(
        "td",
        {},
        s.current
          ? el("span", { class: "badge", text: "this session" })
          : el("button", {
              type: "button",
              text: "Sign out",
              "aria-label": `Sign out ${label} on ${s.deviceId ?? "an unnamed device"}`,
              onclick: () => this.signOut(s.sessionId),
            }),
      ),
    );
  }

  async signOut(sessionId) {
    try {
      await more.revoke({ sessionId });
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      $("account-error").textContent = `Could not sign it out: ${err.message}`;
    }
    await this.load();
  }

  async signOutOthers() {
    for (const s of (this.list ?? []).filter((s) => !s.current)) {
      try {
        await more.revoke({ sessionId: s.sessionId });
      } catch (err) {
        $("account-error").textContent = `Could not sign out every session: ${err.message}`;
      }
    }
    await this.load();
  }
}
