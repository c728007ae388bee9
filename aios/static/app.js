// AIOS dashboard glue. No inline script or style anywhere: the CSP forbids both.
// htmx 4 specifics (event names, what hx-sse does) are documented in docs/htmx-notes.md.
(() => {
  "use strict";
  const csrf = document.querySelector('meta[name="aios-csrf"]')?.content ?? "";

  // Every htmx request, SSE connects and reconnects included, carries the CSRF header.
  document.addEventListener("htmx:config:request", (evt) => {
    evt.detail.ctx.request.headers["X-AIOS-CSRF"] = csrf;
  });

  // htmx 4 has no allowScriptTags: it re-creates every <script> in swapped HTML. Drop them all.
  document.addEventListener("htmx:before:swap", (evt) => {
    for (const task of evt.detail.tasks ?? []) {
      for (const script of task.fragment?.querySelectorAll?.("script") ?? []) script.remove();
    }
  });

  // -- connection indicator: connecting / connected / reconnecting --------------------------
  const show = (source, state) => {
    const out = source.dataset?.status && document.querySelector(source.dataset.status);
    if (!out) return;
    out.className = `conn ${state}`;
    out.textContent = state;
  };
  document.addEventListener("htmx:sse:before:connection", (evt) =>
    show(evt.target, evt.detail.connection.attempt > 0 ? "reconnecting" : "connecting"));
  document.addEventListener("htmx:sse:after:connection", (evt) => {
    evt.target.aiosFailures = 0;
    show(evt.target, "connected");
  });
  document.addEventListener("htmx:sse:error", (evt) => show(evt.target, "reconnecting"));
  document.addEventListener("htmx:sse:close", (evt) => show(evt.target, "reconnecting"));

  // The daemon could not replay what this page missed (it restarted, or we were away too long):
  // the page is stale, so fetch it again rather than patch it.
  document.addEventListener("reset", (evt) => {
    if (evt.target.id === "events") window.location.reload();
  });

  // hx-sse does not retry a failed FIRST connect (a plain htmx request): retry it ourselves.
  const RETRY_MS = [1000, 2000, 5000, 10000];
  const retry = (el) => {
    const n = el.aiosFailures = (el.aiosFailures ?? 0) + 1;
    show(el, "reconnecting");
    setTimeout(() => htmx.trigger(el, "aios:connect"), RETRY_MS[Math.min(n, RETRY_MS.length) - 1]);
  };

  // -- answers to our own requests -----------------------------------------------------------
  const errorBox = (el) =>
    el.closest?.("form, section")?.querySelector("[data-errors]") ?? document.getElementById("flash");
  document.addEventListener("htmx:after:request", (evt) => {
    const el = evt.target;
    const ctx = evt.detail.ctx;
    if (ctx.response?.status === 401) {   // the sign-in ran out: the page itself says what to do
      evt.preventDefault();
      window.location.reload();
      return;
    }
    if (el.hasAttribute?.("hx-sse:connect")) {   // an answer, not a stream: retry later
      evt.preventDefault();
      retry(el);
      return;
    }
    const status = ctx.response?.status ?? 0;
    const box = errorBox(el);
    if (status >= 400) {
      let message = `request failed (HTTP ${status})`;
      try { message = JSON.parse(ctx.text).error ?? message; } catch { /* not JSON */ }
      if (box) { box.textContent = message; box.classList.remove("hidden"); }
      return;
    }
    if (box) { box.textContent = ""; if (box.id === "flash") box.classList.add("hidden"); }
    if (el.matches?.("form[data-reset-on-success]")) {
      const prompt = el.querySelector("textarea");
      if (prompt) prompt.value = "";
    }
  });
  document.addEventListener("htmx:error", (evt) => {
    const el = evt.target;
    if (el.hasAttribute?.("hx-sse:connect") && !el._htmx?.sse) { retry(el); return; }
    const box = errorBox(el);
    if (box) { box.textContent = "AIOS is not reachable"; box.classList.remove("hidden"); }
  });

  // -- live durations ------------------------------------------------------------------------
  const format = (seconds) => {
    seconds = Math.max(0, Math.floor(seconds));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m) return `${m}m ${String(s).padStart(2, "0")}s`;
    return `${s}s`;
  };
  const tick = () => {
    const now = Date.now() / 1000;
    for (const el of document.querySelectorAll(".duration[data-start]:not([data-end])")) {
      el.textContent = format(now - Number(el.dataset.start));
    }
  };
  setInterval(tick, 1000);

  // -- run output: 24-bit colours, and follow the end unless the reader scrolled up ----------
  // A 24-bit colour comes as data-fg/data-bg="#rrggbb" and is set through the CSSOM, which the
  // CSP allows; a style attribute in the markup it would refuse.
  const RGB = /^#[0-9a-f]{6}$/;
  const paintOne = (el) => {
    if (RGB.test(el.dataset.fg ?? "")) el.style.color = el.dataset.fg;
    if (RGB.test(el.dataset.bg ?? "")) el.style.backgroundColor = el.dataset.bg;
  };
  const paint = (node) => {
    if (node.nodeType !== Node.ELEMENT_NODE) return;
    if (node.matches("[data-fg], [data-bg]")) paintOne(node);
    for (const el of node.querySelectorAll("[data-fg], [data-bg]")) paintOne(el);
  };
  const MAX_OUTPUT_CHARS = 2_000_000;   // keep a flood from growing the page without bound
  const setup = () => {
    const out = document.getElementById("output");
    if (!out || out.aiosReady) return;
    out.aiosReady = true;
    paint(out);
    const paused = document.getElementById("output-paused");
    let follow = true;
    const atBottom = () => out.scrollHeight - out.scrollTop - out.clientHeight < 24;
    out.scrollTop = out.scrollHeight;
    out.addEventListener("scroll", () => {
      follow = atBottom();
      paused?.classList.toggle("hidden", follow);
    });
    new MutationObserver((records) => {
      for (const record of records) record.addedNodes.forEach(paint);
      // The open line (#output-tail, last) stays: the stream redraws it in place.
      while (out.textContent.length > MAX_OUTPUT_CHARS && out.firstChild?.id !== "output-tail") {
        out.firstChild.remove();
      }
      if (follow) out.scrollTop = out.scrollHeight;
    }).observe(out, { childList: true, characterData: true, subtree: true });
  };
  document.addEventListener("DOMContentLoaded", setup);

  // -- launch form: the worktree and terminal boxes start as the chosen agent's settings, and the
  // prompt's placeholder says what that agent takes (a task, a command line, nothing) ----------
  const placeholder = (select) => {
    const prompt = document.getElementById("launch-prompt");
    const text = select?.selectedOptions?.[0]?.dataset.placeholder;
    if (prompt && text) prompt.placeholder = text;
  };
  document.addEventListener("change", (evt) => {
    const select = evt.target;
    if (select.id !== "launch-agent") return;
    const box = document.getElementById("launch-worktree");
    const option = select.selectedOptions?.[0];
    if (box && option) box.checked = option.dataset.worktree === "true";
    const terminal = document.getElementById("launch-terminal");
    if (terminal && option) terminal.checked = option.dataset.terminal === "true";
    placeholder(select);
  }, true);  // capture: before htmx's "change from:#launch" asks for the note
  // A reload may keep another choice than the page was rendered with.
  document.addEventListener("DOMContentLoaded", () => placeholder(document.getElementById("launch-agent")));

  // The note under the box is asked for only while the box is checked: nothing to say otherwise.
  document.addEventListener("htmx:before:request", (evt) => {
    const note = evt.target;
    if (note.id !== "worktree-note" || document.getElementById("launch-worktree")?.checked) return;
    evt.preventDefault();
    note.textContent = "";
  });
  // -- the run's prompt: "Show all" only where the two lines cut it, and it stays open across
  // the live updates that redraw the details ----------------------------------------------------
  let promptOpen = false;
  const fitPrompt = () => {
    const toggle = document.querySelector(".prompt-cell > .show-all");
    const text = document.querySelector(".prompt-cell > .prompt-text");
    if (!toggle || !text) return;
    if (promptOpen && !toggle.open) toggle.open = true;
    if (!toggle.open) toggle.classList.toggle("fits", text.scrollHeight <= text.clientHeight + 1);
  };
  document.addEventListener("toggle", (evt) => {
    if (evt.target.matches?.(".prompt-cell > .show-all")) promptOpen = evt.target.open;
  }, true);  // toggle does not bubble
  document.addEventListener("DOMContentLoaded", fitPrompt);
  window.addEventListener("resize", fitPrompt);

  // -- the changes: a changed file's link opens the folded diff it points into -----------------
  const openDiff = () => {
    const target = window.location.hash && document.getElementById(window.location.hash.slice(1));
    const box = target?.closest?.(".diff-box");
    if (box && !box.open) { box.open = true; target.scrollIntoView(); }
  };
  document.addEventListener("click", (evt) => {
    if (evt.target.closest?.(".files a")) document.querySelector(".diff-box")?.setAttribute("open", "");
  }, true);  // capture: open before the browser scrolls to the anchor
  window.addEventListener("hashchange", openDiff);
  document.addEventListener("DOMContentLoaded", openDiff);

  document.addEventListener("htmx:after:swap", () => { setup(); fitPrompt(); });
})();

// -- what you have not seen (aios/unseen.py): looking at any page of the dashboard clears it --
// #unseen carries what failed or called for you since you last looked, up to event data-latest.
// A page in view tells the daemon it showed that much (a POST with the CSRF header: looking
// changes state, so never a GET), and the tray, /api/status and every open page follow, however
// the page was opened. The note comes hidden and is shown only where it is not cleared at once
// (a window without the focus); a page out of view says nothing, and its title has the count.
(() => {
  "use strict";
  const csrf = document.querySelector('meta[name="aios-csrf"]')?.content ?? "";
  let title = null;
  let reported = 0;   // the latest id this page has reported: one look, one POST
  const look = (needFocus) => {
    const note = document.getElementById("unseen");
    if (!note) return;
    title ??= document.title;
    const count = Number(note.dataset.count || 0), latest = Number(note.dataset.latest || 0);
    document.title = count > 0 ? `(${count}) ${title}` : title;
    const inView = document.visibilityState === "visible";
    // News that arrives while the page is open counts as seen only if the window has focus:
    // a page left visible on another screen is not being looked at.
    const seen = count > 0 && inView && (!needFocus || document.hasFocus());
    note.classList.toggle("hidden", count === 0 || seen || latest <= reported);
    if (!seen || latest <= reported) return;
    reported = latest;
    const retry = () => { reported = 0; note.classList.remove("hidden"); };   // at the next look
    fetch("/ui/seen", {
      method: "POST",
      headers: { "X-AIOS-CSRF": csrf },
      body: new URLSearchParams({ up_to: String(latest) }),
      credentials: "same-origin",
    }).then((r) => { if (!r.ok) retry(); }, retry);
  };
  document.addEventListener("DOMContentLoaded", () => look(false));
  document.addEventListener("visibilitychange", () => look(false));
  window.addEventListener("focus", () => look(false));
  document.addEventListener("htmx:after:swap", () => look(true));
})();
