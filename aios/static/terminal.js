// The run page's live terminal: xterm.js on the WebSocket /api/runs/<id>/terminal.
// Protocol (docs/terminal.md): the server sends `screen` first (the whole current screen), then
// `output`, `resized` (another viewer changed the shared size) and `ended`; we send `input`
// (keystrokes and paste, as xterm.js gives them) and `resize` (the panel's size in cells).
import "./xterm-csp.js";
import { Terminal } from "./vendor/xterm.mjs";
import { FitAddon } from "./vendor/addon-fit.mjs";

const RESIZE_DEBOUNCE_MS = 150;
const RETRY_MS = [500, 1000, 2000, 5000, 10000];
const ERROR_SHOWN_MS = 5000;
const ENDED_STATES = new Set(["succeeded", "failed", "stopped", "interrupted"]);

const box = document.getElementById("terminal");
const status = document.getElementById("terminal-status");
const keys = document.getElementById("terminal-keys");

// What the keys a phone keyboard lacks type. Arrows follow the program's cursor key mode
// (DECCKM: full-screen programs ask for ESC O A rather than ESC [ A).
const KEYS = {
  esc: () => "\x1b",
  tab: () => "\t",
  "ctrl-c": () => "\x03",
  "ctrl-d": () => "\x04",
  up: (t) => arrow(t, "A"),
  down: (t) => arrow(t, "B"),
  right: (t) => arrow(t, "C"),
  left: (t) => arrow(t, "D"),
};
const arrow = (term, final) => (term.modes.applicationCursorKeysMode ? "\x1bO" : "\x1b[") + final;

class LiveTerminal {
  constructor(element) {
    this.url = new URL(element.dataset.url, window.location.href);
    this.url.protocol = this.url.protocol === "https:" ? "wss:" : "ws:";
    this.term = new Terminal({
      convertEol: false,
      cursorBlink: true,
      fontFamily: "ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace",
      fontSize: window.matchMedia("(max-width: 600px)").matches ? 12 : 14,
      scrollback: 5000,
      disableStdin: true,  // until the server says this viewer may type
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(element);
    this.socket = null;
    this.canType = false;
    this.ended = false;
    this.failures = 0;
    this.resizeTimer = 0;
    this.errorTimer = 0;
    this.term.onData((data) => this.send({ type: "input", data }));
    new ResizeObserver(() => this.scheduleResize()).observe(element);
    element.terminal = this;  // for the tests: what the screen shows
  }

  connect() {
    this.say(this.failures ? "reconnecting" : "connecting", "connecting");
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("message", (evt) => this.receive(evt.data));
    socket.addEventListener("close", (evt) => this.closed(socket, evt));
  }

  receive(text) {
    let message;
    try { message = JSON.parse(text); } catch { return; }
    switch (message.type) {
      case "screen": return this.screen(message);
      case "output": return this.term.write(message.data);
      case "resized": return this.term.resize(message.cols, message.rows);
      case "ended": return this.end(message.state, message.exit_code);
      case "error": return this.refused(message.error);
      default: return undefined;
    }
  }

  screen({ data, cols, rows, input, state }) {
    this.failures = 0;
    this.term.reset();
    this.term.resize(cols, rows);
    this.term.write(data);
    this.canType = Boolean(input) && !ENDED_STATES.has(state);
    this.term.options.disableStdin = !this.canType;
    if (ENDED_STATES.has(state)) return this.end(state, null);
    this.say(this.canType ? "live" : "live, read-only", "connected");
    keys?.toggleAttribute("hidden", !this.canType);
    // A viewer's own panel decides the size only when it differs: a viewer that merely looks
    // does not redraw everyone's screen.
    this.resize();
    if (this.canType) this.term.focus();
    return undefined;
  }

  // The server did not take something (typed ahead too far, a bad message): say so for a while.
  refused(error) {
    this.say(error, "error");
    clearTimeout(this.errorTimer);
    this.errorTimer = setTimeout(() => {
      if (this.canType) this.say("live", "connected");
    }, ERROR_SHOWN_MS);
  }

  end(state, exitCode) {
    this.ended = true;
    this.canType = false;
    this.term.options.disableStdin = true;
    this.term.options.cursorBlink = false;
    keys?.setAttribute("hidden", "");
    const code = exitCode === null || exitCode === undefined ? "" : `, exit ${exitCode}`;
    this.say(`the run ended (${state}${code}): its final screen, read-only`, "ended");
  }

  closed(socket, evt) {
    if (socket !== this.socket || this.ended) return;
    if (evt.code === 1008) {  // refused: trying again would be refused again
      this.say(`refused: ${evt.reason || "not allowed"}`, "error");
      return;
    }
    this.canType = false;
    this.term.options.disableStdin = true;
    const delay = RETRY_MS[Math.min(this.failures, RETRY_MS.length - 1)];
    this.failures += 1;
    this.say("connection lost: reconnecting", "connecting");
    setTimeout(() => this.connect(), delay);
  }

  send(message) {
    if (!this.canType || this.socket?.readyState !== WebSocket.OPEN) return;
    this.socket.send(JSON.stringify(message));
  }

  scheduleResize() {
    clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => this.resize(), RESIZE_DEBOUNCE_MS);
  }

  resize() {
    if (!this.canType) return;  // an ended run keeps the size it had
    const size = this.fit.proposeDimensions();
    if (!size || !Number.isFinite(size.cols) || !Number.isFinite(size.rows)) return;
    const cols = Math.max(1, Math.min(500, size.cols));
    const rows = Math.max(1, Math.min(500, size.rows));
    if (cols === this.term.cols && rows === this.term.rows) return;
    this.term.resize(cols, rows);
    this.send({ type: "resize", cols, rows });
  }

  typeKey(name) {
    const key = KEYS[name];
    if (!key) return;
    this.send({ type: "input", data: key(this.term) });
    this.term.focus();
  }

  say(text, kind) {
    if (!status) return;
    status.textContent = text;
    status.className = `term-status ${kind}`;
  }
}

if (box) {
  const live = new LiveTerminal(box);
  // Keep the focus (and a phone's keyboard) in the terminal when a key is tapped.
  keys?.addEventListener("mousedown", (evt) => evt.preventDefault());
  keys?.addEventListener("click", (evt) => {
    const button = evt.target.closest("button[data-key]");
    if (button) live.typeKey(button.dataset.key);
  });
  live.connect();
}
