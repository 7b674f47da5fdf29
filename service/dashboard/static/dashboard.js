// wa-sidecar dashboard: live fragments over server-sent events, async forms, filters.
// No framework; every page works without this file, only less live.
"use strict";

(() => {
  const csrf = () => {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  };

  const flash = (text, kind) => {
    const box = document.getElementById("flash");
    if (!box) return;
    box.textContent = text;
    box.className = `flash ${kind || "error"}`;
    box.hidden = !text;
  };

  const parse = (html) => {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content.firstElementChild;
  };

  const keyed = (container, key) =>
    Array.from(container.querySelectorAll("[data-key]")).find((el) => el.dataset.key === key);

  const toggleEmpty = (container) => {
    const empty = document.querySelector("[data-empty]");
    if (empty) empty.hidden = container.querySelector("[data-key]") !== null;
  };

  // A container with data-stream gets its fragments replaced, added and removed live.
  const follow = (container) => {
    const live = document.querySelector("[data-live]");
    const source = new EventSource(container.dataset.stream);
    source.addEventListener("open", () => live && live.classList.add("on"));
    source.addEventListener("error", () => live && live.classList.remove("on"));
    source.addEventListener("fragment", (event) => {
      const data = JSON.parse(event.data);
      const fresh = parse(data.html);
      const current = keyed(container, data.key);
      // The same markup as shown (data-v): keep the element, and what was typed into it.
      if (current && current.dataset.v === fresh.dataset.v) return;
      if (current) current.replaceWith(fresh);
      else container.appendChild(fresh);
      toggleEmpty(container);
      document.dispatchEvent(new CustomEvent("dashboard:fragment", { detail: data.key }));
    });
    source.addEventListener("removed", (event) => {
      const current = keyed(container, JSON.parse(event.data).key);
      if (current) current.remove();
      toggleEmpty(container);
    });
    window.addEventListener("pagehide", () => source.close());
  };

  // Forms with data-async post with the CSRF header and stay on the page.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !("async" in form.dataset)) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const button = form.querySelector("button");
    if (button) button.disabled = true;
    flash("");
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: { Accept: "application/json", "X-CSRF-Token": csrf() },
        body: new URLSearchParams(new FormData(form)),
        credentials: "same-origin",
      });
      const data = await response.json().catch(() => ({}));
      if (!response.ok) {
        flash((data.error && data.error.message) || `Failed (${response.status})`);
      } else if (form.dataset.show) {
        const out = form.querySelector(`[data-${form.dataset.show}]`);
        if (out) out.textContent = data[form.dataset.show] || "";
      }
    } catch (error) {
      flash(`The service did not answer: ${error}`);
    } finally {
      if (button) button.disabled = false;
    }
  });

  // Filters apply as soon as they change.
  document.addEventListener("change", (event) => {
    const select = event.target;
    if (select instanceof HTMLSelectElement && "autofilter" in select.dataset) select.form.submit();
  });

  // Times arrive in UTC; show them in the browser's time zone.
  const localTimes = (root) => {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach((el) => {
      el.dataset.local = "";
      const date = new Date(el.getAttribute("datetime"));
      if (!Number.isNaN(date.getTime())) {
        el.title = el.textContent;
        el.textContent = date.toLocaleString();
      }
    });
  };

  document.addEventListener("DOMContentLoaded", () => {
    const signin = document.querySelector("form[data-autosubmit]");
    if (signin) signin.submit();
    localTimes(document);
    document.addEventListener("dashboard:fragment", () => localTimes(document));
    document.querySelectorAll("[data-stream]").forEach(follow);
  });
})();
