// xterm.js under the dashboard's CSP, which has no 'unsafe-inline' for styles (docs/security.md).
//
// xterm.js 6's DOM renderer styles itself in two ways the CSP refuses: <style> elements it
// creates and fills through `textContent` (its theme, cell size and scrollbar colours), and a
// `style` attribute it sets with setAttribute on the <span>s of a row it is drawing, before the
// row is in the page (true-colour cells). Browsers then drop those styles (the terminal has no
// colours and wrong line heights) and report a violation for each. The CSSOM is not governed by
// the CSP, so the same styles go that way instead, with no change to the policy: markup injected
// into a page still cannot style anything.
//
// - document.createElement("style") gives an inert <template> standing in for it: the text set
//   on it goes into a constructed style sheet that the document adopts, removing it drops the
//   sheet. Nothing else on our pages creates <style> elements.
// - setAttribute("style", …) on a <span> that is not in the page sets `style.cssText`.
// Check both again after vendoring another xterm.js (scripts/vendor-xterm.sh).

const createElement = document.createElement.bind(document);

function styleStandIn() {
  const standIn = createElement("template");
  const sheet = new CSSStyleSheet();
  let text = "";
  const adopt = () => {
    if (!document.adoptedStyleSheets.includes(sheet)) {
      document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
    }
  };
  Object.defineProperty(standIn, "textContent", {
    get: () => text,
    set: (value) => {
      text = String(value ?? "");
      sheet.replaceSync(text);
      adopt();
    },
  });
  const remove = standIn.remove.bind(standIn);
  standIn.remove = () => {
    document.adoptedStyleSheets = document.adoptedStyleSheets.filter((s) => s !== sheet);
    remove();
  };
  return standIn;
}

document.createElement = (name, options) =>
  String(name).toLowerCase() === "style" ? styleStandIn() : createElement(name, options);

const setAttribute = HTMLSpanElement.prototype.setAttribute;
HTMLSpanElement.prototype.setAttribute = function (name, value) {
  if (String(name).toLowerCase() === "style" && !this.isConnected) {
    this.style.cssText = String(value);
    return;
  }
  setAttribute.call(this, name, value);
};
