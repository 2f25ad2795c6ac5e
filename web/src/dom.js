// Small DOM helpers shared by the page's views.

export const $ = (id) => document.getElementById(id);

/** An element with properties (`class`, `dataset`, `text`, `on…` listeners, attributes) and children. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** "2026-12-02 08:01" in the browser's time zone, or "—". */
export function when(rfc3339) {
  if (!rfc3339) return "—";
  const d = typeof rfc3339 === "number" ? new Date(rfc3339 * 1000) : new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return "—";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
