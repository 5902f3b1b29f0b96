// Beacon console page. No framework, no inline script, no innerHTML with
// data: every text goes through textContent. The page talks only to the
// console that served it (relative URLs under its session path).
"use strict";

const S = {
  mission: null, officers: [], cases: new Map(), open: null, openCase: null,
  connected: false, ws: null, wsUp: false, retry: 500, shown: {}, broadcasts: [],
};
window.__beacon = S; // for tests and the latency benchmark: S.shown[id] = when a case first appeared

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined && kid !== false) e.append(kid);
  return e;
}

const PRIO = { 1: "urgent", 2: "high", 3: "routine", urgent: "urgent", high: "high", routine: "routine" };
const prioName = (p) => PRIO[p] || String(p);
const prioRank = (p) => ({ urgent: 1, high: 2, routine: 3 })[prioName(p)] || 9;
const KIND = { alert: "alert", meeting_request: "meeting", observation_request: "trial observation", broadcast_answer: "broadcast answer" };
const STATE = { new: "new", acknowledged: "acknowledged", in_progress: "in progress", resolved: "resolved" };

function officer() { return $("officer").value; }

async function api(path, body) {
  const opt = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const r = await fetch(path, opt);
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.error || r.statusText);
  return j;
}

function fmtTime(t) {
  const d = new Date(t);
  return d.toLocaleString(undefined, { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
}
function dur(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), sec = s % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  return `${m}:${String(sec).padStart(2, "0")}`;
}
// span says a duration in words: "15 min", "4 h", "3 days".
function span(ms) {
  const m = Math.round(ms / 60000);
  if (m < 60) return `${m} min`;
  if (m < 1440) return m % 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m / 60} h`;
  const d = m / 1440;
  return Number.isInteger(d) ? `${d} days` : `${Math.floor(m / 60)} h`;
}
function ago(t) {
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

// countdown renders the time left to the post's committed ack target.
function countdown(c) {
  const span = el("span", { class: "countdown", "data-due": c.due_ms || "", "data-acked": c.acked_ms || "" });
  paintCountdown(span);
  return span;
}
function paintCountdown(span) {
  const due = Number(span.dataset.due), acked = Number(span.dataset.acked);
  if (!due) { span.textContent = ""; return; }
  if (acked) {
    const late = acked > due;
    span.className = "countdown done";
    span.textContent = late ? `acknowledged ${dur(acked - due)} late` : "acknowledged in time";
    return;
  }
  const left = due - Date.now();
  if (left < 0) { span.className = "countdown over"; span.textContent = `OVERDUE ${dur(-left)}`; return; }
  span.className = "countdown " + (left < 5 * 60 * 1000 ? "soon" : "ok");
  span.textContent = `${dur(left)} left to acknowledge`;
}
setInterval(() => document.querySelectorAll(".countdown").forEach(paintCountdown), 1000);

// ---- the list ----

function passes(c) {
  const cc = $("f-country").value, kind = $("f-kind").value, of = $("f-officer").value, st = $("f-state").value;
  if (cc && c.country !== cc) return false;
  if (kind && c.kind !== kind) return false;
  if (of === "-" && c.assignee) return false;
  if (of && of !== "-" && c.assignee !== of) return false;
  if (st === "open" && c.state === "resolved") return false;
  if (st && st !== "open" && c.state !== st) return false;
  return true;
}

function sorted() {
  return [...S.cases.values()].sort((a, b) => {
    const ra = a.state === "resolved", rb = b.state === "resolved";
    if (ra !== rb) return ra ? 1 : -1;
    if (prioRank(a.priority) !== prioRank(b.priority)) return prioRank(a.priority) - prioRank(b.priority);
    return new Date(a.opened) - new Date(b.opened);
  });
}

// The list is patched, not rebuilt: rows are kept by case id, a row is
// redrawn only when its case changed (dirty) or everything must be
// (full: a filter, the selection), and rows are moved only when out of
// place. A busy post's list of a thousand cases stays cheap to update.
const rows = new Map();
const dirty = new Set();
let full = true;
function renderList() {
  const ul = $("case-list");
  const items = sorted().filter(passes);
  const want = new Set(items.map((c) => c.id));
  for (const [id, li] of rows) if (!want.has(id)) { li.remove(); rows.delete(id); }
  let prev = null;
  for (const c of items) {
    let li = rows.get(c.id);
    if (!li || full || dirty.has(c.id)) {
      const fresh = caseItem(c);
      if (li) li.replaceWith(fresh);
      li = fresh;
      rows.set(c.id, li);
    }
    const at = prev ? prev.nextSibling : ul.firstChild;
    if (at !== li) ul.insertBefore(li, at);
    prev = li;
  }
  dirty.clear();
  full = false;
  const open = [...S.cases.values()].filter((c) => c.state !== "resolved");
  const overdue = open.filter((c) => c.due_ms && !c.acked_ms && c.due_ms < Date.now()).length;
  const fresh = open.filter((c) => c.state === "new").length;
  $("counts").replaceChildren(
    el("span", { text: `${open.length} open · ${fresh} new` }),
    overdue ? el("span", {}, " · ", el("strong", { text: `${overdue} overdue` })) : "",
    el("span", { text: ` · showing ${items.length}` }));
}

function caseItem(c) {
  const p = prioName(c.priority);
  const li = el("li", {
    class: `case p-${p} s-${c.state}` + (c.unread ? " unread" : "") + (S.open === c.id ? " selected" : ""),
    "data-case": c.id, "data-state": c.state, "data-shown-ms": S.shown[c.id] || "", tabindex: "0",
    onclick: () => openCase(c.id), onkeydown: (e) => { if (e.key === "Enter") openCase(c.id); },
  },
  el("div", { class: "row1" }, el("span", { class: `prio prio-${p}`, text: p }), el("span", { class: "title", text: c.title }),
    c.unread ? el("span", { class: "dot", title: `${c.unread} unread`, "aria-label": `${c.unread} unread` }) : ""),
  el("div", { class: "row2" },
    el("span", { text: c.country.toUpperCase() }),
    el("span", { text: (KIND[c.kind] || c.kind || "?") + (c.category ? " · " + c.category.replace("_", " ") : "") }),
    el("span", { text: ago(c.opened) }),
    c.state !== "resolved" ? countdown(c) : "",
    el("span", { class: `state state-${c.state}`, text: STATE[c.state] || c.state }),
    c.meeting ? el("span", { text: "meeting " + c.meeting }) : "",
    c.cancelled ? el("span", { class: "warn-text", text: "called off: " + c.cancelled.replace("_", " ") }) : "",
    (c.flags || []).map((f) => el("span", { class: "flag", text: f })),
    c.assignee ? el("span", { text: "→ " + officerName(c.assignee) }) : ""));
  return li;
}

function officerName(id) { const o = S.officers.find((x) => x.id === id); return o ? o.name : id; }

// merge takes in case summaries; the list is drawn once per frame, and
// each new case is stamped with when it was first drawn (S.shown).
let pending = null;
function merge(list) {
  for (const c of list) {
    if (!S.cases.has(c.id) && !S.shown[c.id]) (pending = pending || []).push(c.id);
    S.cases.set(c.id, c);
    dirty.add(c.id);
  }
  scheduleRender();
}
let frame = 0;
function scheduleRender() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    renderList();
    if (pending) {
      const now = Date.now();
      for (const id of pending) S.shown[id] = now;
      pending = null;
    }
  });
}

// ---- the case view ----

async function openCase(id) {
  S.open = id;
  full = true;
  renderList();
  try {
    S.openCase = await api(`api/cases/${id}`);
    renderCase();
    if (S.openCase.unread) api(`api/cases/${id}/read`, { officer: officer() }).catch(() => {});
  } catch (e) {
    $("case-view").replaceChildren(el("div", { class: "empty", text: "Could not load the case: " + e.message }));
  }
}

function msgSpan() { return el("span", { class: "msg", role: "status" }); }

// act runs one action and shows its outcome beside the button.
// act sends an action on the open case. The fields in used are what the
// action consumed (a reply's text, a note): once it succeeded they are
// emptied, so the re-drawn case does not keep them as if still being
// typed, inviting the same reply or note a second time. Every other
// field keeps what the officer typed.
function act(action, body, msg, ...used) {
  msg.className = "msg"; msg.textContent = "sending…";
  api(`api/cases/${S.open}/${action}`, Object.assign({ officer: officer() }, body)).then((c) => {
    for (const f of used) f.value = f.defaultValue;
    S.openCase = c;
    renderCase();
  }, (e) => { msg.className = "msg err"; msg.textContent = e.message; });
}

function field(label, value, cls) { return el("div", {}, el("dt", { text: label }), el("dd", { class: cls, text: value })); }
function yesno(b) { return b ? "yes" : "no"; }

function renderCase() {
  const c = S.openCase, p = prioName(c.priority);
  const view = $("case-view");
  const head = el("div", { class: "case-head" },
    el("span", { class: `prio prio-${p}`, text: p }),
    el("h1", { id: "case-title", text: c.title }),
    c.state !== "resolved" ? countdown({ due_ms: c.due_ms, acked_ms: c.acked_at ? new Date(c.acked_at).getTime() : 0 }) : "");
  const meta = el("dl", { class: "meta" },
    field("State", STATE[c.state] || c.state),
    field("Country", c.country.toUpperCase()),
    c.category ? field("Category", c.category.replace("_", " ")) : "",
    c.location ? field("Location", c.location) : "",
    field("Opened", `${fmtTime(c.opened)} (${ago(c.opened)})`),
    c.target_s ? field("We committed to acknowledge within", span(c.target_s * 1000)) : "",
    field("Assigned to", c.assignee ? `${officerName(c.assignee)} (defender sees: ${c.liaison})` : "nobody yet"),
    c.safety_number ? field("Defender's safety number", c.safety_number, "safety") : field("From", c.from),
    c.kind === "alert" ? field("Consent to share with partners", yesno(c.share), c.share ? "yes" : "no") : "",
    c.kind === "alert" ? field("Consent to publicise", yesno(c.publicise), c.publicise ? "yes" : "no") : "",
    c.cancelled ? field("Called off by the defender", c.cancelled.replace("_", " "), "no") : "",
    (c.flags || []).length ? field("Flags", c.flags.join(", ")) : "",
    c.broadcast ? field("Answers the broadcast", (c.broadcast.title || c.broadcast.id) + ` (${c.broadcast.intent})`) : "",
    (c.shared_with || []).length ? field("Shared with", c.shared_with.join(", ")) : "",
    c.reported_to ? field("Reported to", c.reported_to) : "");

  const left = el("div", {}, actionsCard(c), c.meeting ? meetingCard(c) : "", c.observation && c.observation.court ? observationCard(c) : "", threadCard(c));
  const right = el("div", {}, notesCard(c), rollupCard(c));
  // A live update of the open case must not wipe what an officer is
  // typing: what the fields hold, and where the cursor is, survive it.
  const kept = keepFields(view);
  view.replaceChildren(head, meta, el("div", { class: "cols" }, left, right));
  restoreFields(view, kept);
}

// keepFields notes the values of the view's named fields that the officer
// changed (not those the page set), and which field has the focus.
function keepFields(view) {
  const values = {};
  for (const f of view.querySelectorAll("input[id], textarea[id], select[id]")) {
    if (f.type === "checkbox") {
      if (f.checked !== f.defaultChecked) values[f.id] = f.checked;
    } else if (f.tagName === "SELECT") {
      const d = [...f.options].find((o) => o.defaultSelected);
      if (f.value !== (d ? d.value : f.options.length ? f.options[0].value : "")) values[f.id] = f.value;
    } else if (f.value !== f.defaultValue) {
      values[f.id] = f.value;
    }
  }
  const a = document.activeElement;
  const focus = a && a.id && view.contains(a) ? { id: a.id, start: a.selectionStart, end: a.selectionEnd } : null;
  return { values, focus };
}

function restoreFields(view, kept) {
  for (const [id, v] of Object.entries(kept.values)) {
    const f = document.getElementById(id);
    if (!f || !view.contains(f)) continue;
    if (f.type === "checkbox") f.checked = v;
    else f.value = v;
  }
  if (kept.focus) {
    const f = document.getElementById(kept.focus.id);
    if (f && view.contains(f)) {
      f.focus();
      if (typeof kept.focus.start === "number" && f.setSelectionRange) f.setSelectionRange(kept.focus.start, kept.focus.end);
    }
  }
}

function actionsCard(c) {
  const card = el("section", { class: "card", id: "actions" }, el("h2", { text: "Act on this case" }));
  if (!c.acked_at) {
    const next = el("input", { id: "ack-next", placeholder: "Next step the defender is told (e.g. a diplomat is on the way)", maxlength: "1000" });
    const msg = msgSpan();
    card.append(el("div", { class: "action-block" },
      el("div", { class: "action" }, next,
        el("button", { id: "ack-btn", class: "btn btn-urgent", type: "button", onclick: () => act("ack", { next: next.value }, msg, next) }, "Acknowledge"), msg),
      el("p", { class: "muted", text: c.can_answer ? "Sends the defender a signed acknowledgement naming who acts, and tells the relay so it stops escalating." : "The defender gave no reply mailbox: only the relay is told." })));
  } else {
    card.append(el("p", { class: "muted", text: `Acknowledged ${fmtTime(c.acked_at)} by ${officerName(c.acked_by)}.` }));
  }
  if (c.can_answer) {
    const text = el("textarea", { id: "reply-text", rows: "3", maxlength: "4000", placeholder: "Reply to the defender (signed, end-to-end encrypted)" });
    const msg = msgSpan();
    card.append(el("div", { class: "action-block" }, text,
      el("div", { class: "action" }, el("button", { id: "reply-btn", class: "btn btn-primary", type: "button", onclick: () => act("reply", { text: text.value }, msg, text) }, "Send reply"), msg)));
  }
  const sel = el("select", { id: "assign-to" }, S.officers.map((o) => el("option", { value: o.id, text: o.name, selected: o.id === c.assignee })));
  const tell = el("input", { type: "checkbox", id: "assign-tell", checked: c.can_answer });
  const amsg = msgSpan();
  card.append(el("div", { class: "action-block" }, el("div", { class: "action" }, el("span", { text: "Assign to" }), sel,
    el("label", {}, tell, " tell the defender who their liaison is"),
    el("button", { class: "btn", type: "button", onclick: () => act("assign", { assignee: sel.value, tell: tell.checked }, amsg) }, c.assignee ? "Reassign" : "Assign"), amsg)));

  const more = el("div", { class: "action-block" });
  const smsg = msgSpan();
  if (c.kind === "alert") {
    const partners = (S.mission && S.mission.partners) || [];
    const can = c.share && partners.length > 0;
    more.append(el("div", { class: "action" },
      el("button", { id: "share-btn", class: "btn", type: "button", disabled: !can, onclick: () => act("share", {}, smsg) }, "Share with partner governments"),
      el("span", { class: "muted", text: !c.share ? "The defender did not consent to sharing." : partners.length ? partners.join(", ") : "No partner covers this country." }), smsg));
  }
  if (S.mission && S.mission.headquarters) {
    const rep = el("textarea", { id: "report-text", rows: "2", placeholder: `Case report to headquarters (${S.mission.headquarters}), encrypted` });
    const rmsg = msgSpan();
    more.append(rep, el("div", { class: "action" }, el("button", { class: "btn", type: "button", onclick: () => act("report", { text: rep.value }, rmsg, rep) }, "Send case report"), rmsg));
  }
  const stmsg = msgSpan();
  more.append(el("div", { class: "action" },
    c.state === "resolved"
      ? el("button", { class: "btn", type: "button", onclick: () => act("state", { state: "in_progress" }, stmsg) }, "Reopen")
      : [c.state !== "in_progress" ? el("button", { class: "btn", type: "button", onclick: () => act("state", { state: "in_progress" }, stmsg) }, "Mark in progress") : "",
        el("button", { id: "resolve-btn", class: "btn", type: "button", onclick: () => act("state", { state: "resolved" }, stmsg) }, "Resolve")],
    stmsg));
  card.append(more);
  return card;
}

function meetingCard(c) {
  const m = c.meeting;
  const card = el("section", { class: "card", id: "meeting" }, el("h2", { text: `Meeting: ${m.state}` }),
    el("p", {}, el("strong", { text: "Purpose: " }), m.purpose || ""),
    el("p", { class: "muted", text: `Place: ${m.place || "?"}` + (m.safety_notes ? ` · Safety notes: ${m.safety_notes}` : "") }));
  const msg = msgSpan();
  if (m.times && m.times.length && m.state !== "requested") {
    card.append(el("p", {}, el("strong", { text: m.state === "proposed" ? "We proposed: " : "Agreed: " }), m.times.map(fmtTime).join("; ")));
  }
  card.append(el("h3", { text: "The defender proposed" }),
    el("ul", { class: "times" }, (m.proposed || []).map((t, i) => {
      const agreed = (m.state === "accepted" || m.state === "confirmed") && (m.times || []).some((x) => new Date(x).getTime() === new Date(t).getTime());
      return el("li", { class: agreed ? "agreed" : "" }, el("span", { text: fmtTime(t) + (agreed ? ` · ${m.state}` : "") }),
        agreed ? "" : el("button", { class: "btn btn-primary", type: "button", "data-accept": String(i), onclick: () => act("meeting", { action: "accept", times: [t] }, msg) }, "Accept this time"));
    })));
  const when = el("input", { type: "datetime-local", id: "propose-time" });
  card.append(el("div", { class: "action" }, el("span", { text: "Propose another time" }), when,
    el("button", { class: "btn", type: "button", onclick: () => when.value && act("meeting", { action: "propose", times: [new Date(when.value).toISOString()] }, msg, when) }, "Propose")));
  card.append(el("div", { class: "action" },
    m.state === "accepted" ? el("button", { class: "btn btn-primary", type: "button", onclick: () => act("meeting", { action: "confirm" }, msg) }, "Confirm the meeting") : "",
    m.state !== "cancelled" ? el("button", { class: "btn", type: "button", onclick: () => act("meeting", { action: "cancel" }, msg) }, "Cancel the meeting") : "", msg));
  return card;
}

function observationCard(c) {
  const o = c.observation;
  const card = el("section", { class: "card", id: "observation" }, el("h2", { text: "Trial observation" }),
    el("p", {}, el("strong", { text: `${o.court}, case ${o.case}` }), el("br"), "Hearing: " + fmtTime(o.hearing)),
    (o.defendants || []).length ? el("p", { class: "muted", text: "Defendants: " + o.defendants.join(", ") }) : "",
    o.charges ? el("p", { class: "muted", text: "Charges: " + o.charges }) : "");
  const peers = o.peers || [];
  card.append(el("h3", { text: "Who attends" }),
    el("p", { text: o.observer ? `Us: ${o.observer} (${o.status})` : "We have not assigned an observer." }),
    peers.length ? el("ul", { class: "peers" }, peers.map((p) => el("li", { text: `${p.mission}: ${p.observer} (${p.status})` })))
      : el("p", { class: !o.observer ? "warn-text" : "muted", text: "No other post has said it will attend." }));
  const who = el("input", { id: "observer", placeholder: "Observer (a role, e.g. Second Secretary)", value: o.observer || "" });
  const text = el("textarea", { id: "outcome", rows: "2", placeholder: "Outcome of the hearing (for 'Record outcome')" });
  const msg = msgSpan();
  card.append(el("div", { class: "action" }, who), text, el("div", { class: "action" },
    el("button", { class: "btn", type: "button", onclick: () => act("observe", { status: "assigned", observer: who.value }, msg) }, "Assign observer"),
    el("button", { class: "btn btn-primary", type: "button", onclick: () => act("observe", { status: "confirmed", observer: who.value }, msg) }, "Confirm to the defender"),
    el("button", { class: "btn", type: "button", onclick: () => act("observe", { status: "outcome", observer: who.value, text: text.value }, msg, text) }, "Record outcome"), msg),
  el("p", { class: "muted", text: "Every notice is also sent to the other missions covering this country, so no hearing is left unattended and not every post sends someone." }));
  return card;
}

function threadCard(c) {
  return el("section", { class: "card", id: "thread" }, el("h2", { text: "Thread" }),
    el("ol", { class: "thread" }, c.thread.map((e) => {
      const cls = e.out ? "out" : e.act ? "act" : "in";
      const who = e.from === "defender" ? "Defender" : officerName(e.from);
      return el("li", { class: `entry ${cls}` },
        el("div", { class: "who" }, el("span", { text: who }), el("span", { text: fmtTime(e.at) }), e.queued ? el("span", { class: "warn-text", text: "waiting for the relay" }) : ""),
        el("div", { class: "text", text: e.text }));
    })));
}

function notesCard(c) {
  const text = el("textarea", { id: "note-text", rows: "3", maxlength: "4000", placeholder: "Internal note for colleagues" });
  const msg = msgSpan();
  return el("section", { class: "card note-card", id: "notes" }, el("h2", { text: "Internal notes" }),
    el("p", { class: "muted", text: "Never leave the mission: not sent to the defender, the relay, partners or headquarters." }),
    el("ul", { class: "notes" }, (c.notes || []).map((n) => el("li", {}, el("div", { class: "who", text: `${officerName(n.officer)} · ${fmtTime(n.at)}` }), n.text))),
    text, el("div", { class: "action" }, el("button", { id: "note-btn", class: "btn", type: "button", onclick: () => act("note", { text: text.value }, msg, text) }, "Add note"), msg));
}

// The delivery roll-up (who received, acknowledged, acts) is filled by
// the bridge's receipts; until then it says what it will show.
// rollupCard: who received, acknowledged and acts, across the posts of the
// country and the partners, from the signed receipts and acks the relay
// holds (verified by the console). A partner is "waiting to be delivered"
// until the bridge's receipt says its relay stored the alert.
function rollupCard(c) {
  const card = el("section", { class: "card", id: "rollup" }, el("h2", { text: "Governments" }));
  if (c.kind !== "alert") {
    card.append(el("p", { class: "muted", text: "Only alerts are coordinated with other posts and partners." }));
    return card;
  }
  const body = el("div", { id: "rollup-body" }, el("p", { class: "muted", text: "asking the relay…" }));
  card.append(body);
  const id = c.id;
  api(`api/cases/${id}/rollup`).then((ru) => {
    if (S.open !== id) return;
    const rows = ru.parties.map((p) => el("tr", { class: p.acknowledged ? "acked" : "" },
      el("td", { text: p.name ? `${p.name} (${p.id})` : p.id }),
      el("td", { text: p.role === "partner" ? "partner government" : p.role }),
      el("td", { text: p.status })));
    body.replaceChildren(el("table", { class: "rollup" },
      el("thead", {}, el("tr", {}, el("th", { text: "Government" }), el("th", { text: "Role" }), el("th", { text: "Status" }))),
      el("tbody", {}, rows)));
  }, (e) => {
    if (S.open === id) body.replaceChildren(el("p", { class: "muted", text: "Cannot show it now: " + e.message }));
  });
  return card;
}

// ---- broadcasts ----

function renderBroadcasts() {
  $("bcast-list").replaceChildren(...S.broadcasts.slice().reverse().map((b) => el("li", {},
    el("strong", { text: `[${b.message.category}] ${b.message.title}` }), " ",
    el("span", { class: "muted", text: `${b.message.country.toUpperCase()} · ${fmtTime(b.at)} · ${officerName(b.officer)}` + (b.message.valid_until ? ` · valid until ${fmtTime(b.message.valid_until)}` : "") }))));
}

$("bcast-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const msg = $("b-msg");
  const until = $("b-until").value;
  msg.className = "msg"; msg.textContent = "publishing…";
  api("api/broadcasts", { officer: officer(), country: $("b-country").value, category: $("b-category").value, title: $("b-title").value,
    text: $("b-text").value, valid_until: until ? new Date(until + "T23:59:59Z").toISOString() : "0001-01-01T00:00:00Z" }).then((j) => {
    S.broadcasts = j.broadcasts || []; renderBroadcasts();
    msg.className = "msg ok"; msg.textContent = "published"; $("b-title").value = ""; $("b-text").value = "";
  }, (err) => { msg.className = "msg err"; msg.textContent = err.message; });
});

function showTab(cases) {
  $("tab-cases").classList.toggle("active", cases); $("tab-bcast").classList.toggle("active", !cases);
  $("cases-pane").hidden = !cases; $("bcast-pane").hidden = cases;
}
$("tab-cases").addEventListener("click", () => showTab(true));
$("tab-bcast").addEventListener("click", () => showTab(false));
for (const id of ["f-country", "f-kind", "f-officer", "f-state"]) $(id).addEventListener("change", () => { full = true; renderList(); });
$("officer").addEventListener("change", () => localStorage.setItem("beacon-officer", officer()));

// ---- state and live pushes ----

function setStatus() {
  const pill = $("status");
  $("lost").hidden = S.wsUp;
  $("relay-down").hidden = !S.wsUp || S.connected;
  if (!S.wsUp) { pill.className = "pill pill-bad"; pill.textContent = "console lost"; }
  else if (!S.connected) { pill.className = "pill pill-wait"; pill.textContent = "relay unreachable"; }
  else { pill.className = "pill pill-live"; pill.textContent = "live"; }
  document.body.dataset.live = S.wsUp && S.connected ? "yes" : "no";
}

async function load() {
  const st = await api("api/state");
  S.mission = st.mission; S.officers = st.officers; S.connected = st.connected; S.broadcasts = st.broadcasts || [];
  S.cases.clear(); full = true; merge(st.cases);
  $("mission-name").textContent = st.mission.name;
  $("countries").textContent = (st.mission.countries || []).map((c) => c.toUpperCase()).join(" ");
  const t = st.mission.targets_s || {};
  $("commitments").textContent = `Our commitments: acknowledge urgent within ${span((t.urgent || 0) * 1000)}, high ${span((t.high || 0) * 1000)}, routine ${span((t.routine || 0) * 1000)}` +
    ((st.mission.offers || []).length ? ` · we offer ${st.mission.offers.join(", ")}` : "");
  const sel = $("officer"), keep = localStorage.getItem("beacon-officer");
  sel.replaceChildren(...S.officers.map((o) => el("option", { value: o.id, text: o.name, selected: o.id === keep })));
  $("f-officer").replaceChildren(el("option", { value: "", text: "Any officer" }), el("option", { value: "-", text: "Unassigned" }),
    ...S.officers.map((o) => el("option", { value: o.id, text: o.name })));
  for (const id of ["f-country", "b-country"]) {
    const s = $(id);
    s.replaceChildren(...(id === "f-country" ? [el("option", { value: "", text: "All countries" })] : []),
      ...(st.mission.countries || []).map((c) => el("option", { value: c, text: c.toUpperCase() })));
  }
  renderList(); renderBroadcasts(); setStatus();
  if (S.open) openCase(S.open);
}

function connect() {
  const ws = new WebSocket(new URL("ws", location.href).href.replace(/^http/, "ws"));
  S.ws = ws;
  ws.onopen = () => { S.wsUp = true; S.retry = 500; load().catch(() => {}); setStatus(); };
  ws.onmessage = (ev) => {
    const p = JSON.parse(ev.data);
    if (p.type === "relay") { S.connected = p.connected; setStatus(); return; }
    if (p.type === "reload") { load().catch(() => {}); return; }
    if (p.type === "cases") {
      merge(p.cases);
      if (S.open && p.cases.some((c) => c.id === S.open)) api(`api/cases/${S.open}`).then((c) => { S.openCase = c; renderCase(); }, () => {});
    }
  };
  ws.onclose = () => {
    S.wsUp = false; setStatus();
    setTimeout(connect, S.retry);
    S.retry = Math.min(S.retry * 2, 5000);
  };
}

setStatus();
connect();
