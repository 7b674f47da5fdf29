// wa-sidecar dashboard, the event monitor: outbox rows streamed into a table, newest first.
// Rows are built with textContent only (event bodies are other people's text), and the
// table keeps the last KEPT rows so an open tab never grows without bound.
"use strict";

(() => {
  const KEPT = 200;

  const cell = (row, text) => {
    const td = document.createElement("td");
    if (text instanceof Node) td.appendChild(text);
    else td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
    return td;
  };

  const outboxRow = (data) => {
    const row = document.createElement("tr");
    row.dataset.seq = data.seq;
    row.dataset.event = data.event;
    cell(row, data.seq);
    const when = document.createElement("time");
    when.dateTime = data.created_at;
    when.textContent = new Date(data.created_at).toLocaleTimeString();
    cell(row, when);
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = data.event;
    const pre = document.createElement("pre");
    pre.textContent =
      data.body === null ? `(${data.body_bytes} bytes, too long to show)` : JSON.stringify(data.body, null, 1);
    details.append(summary, pre);
    cell(row, details);
    const link = document.createElement("a");
    link.href = `/dashboard/sessions/${encodeURIComponent(data.session_id)}`;
    link.textContent = data.session_id;
    cell(row, link);
    cell(row, data.workspace_id);
    cell(row, `${data.status} (${data.id})`);
    return row;
  };

  const noteRow = (text) => {
    const row = document.createElement("tr");
    row.className = "gap";
    const td = cell(row, text);
    td.colSpan = 6;
    return row;
  };

  const monitor = (body) => {
    const live = document.querySelector("[data-live]");
    const empty = document.querySelector("[data-monitor-empty]");
    const pause = document.querySelector("[data-pause]");
    let last = null;
    let source = null;

    const add = (row) => {
      body.insertBefore(row, body.firstChild);
      while (body.rows.length > KEPT) body.deleteRow(body.rows.length - 1);
      if (empty) empty.hidden = true;
    };

    const open = () => {
      // A new EventSource cannot set Last-Event-ID: resume after the last seq by query.
      const url = new URL(body.dataset.monitor, window.location.href);
      if (last !== null) url.searchParams.set("after", last);
      source = new EventSource(url);
      source.addEventListener("open", () => live && live.classList.add("on"));
      source.addEventListener("error", () => live && live.classList.remove("on"));
      source.addEventListener("outbox", (event) => {
        last = event.lastEventId;
        add(outboxRow(JSON.parse(event.data)));
      });
      source.addEventListener("gap", (event) => {
        last = event.lastEventId;
        const { skipped } = JSON.parse(event.data);
        add(noteRow(`${skipped} older events were skipped while this page was away.`));
      });
    };

    if (pause) {
      pause.addEventListener("click", () => {
        if (source) {
          source.close();
          source = null;
          if (live) live.classList.remove("on");
          pause.textContent = "Resume";
        } else {
          open();
          pause.textContent = "Pause";
        }
      });
    }
    window.addEventListener("pagehide", () => source && source.close());
    open();
  };

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("tbody[data-monitor]").forEach(monitor);
  });
})();
