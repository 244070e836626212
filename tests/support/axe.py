"""axe-core on every page state the browser tests visit: each page load, each htmx swap of
the annotation page, and the last state of every page. Any violation fails the test.

axe comes from npm (package-lock.json) and is copied by `scripts/install.sh test` into
tests/browser/vendor/; it is injected by Playwright (which our CSP does not govern), never
served by the app.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.browserkit import ROOT

AXE_PATH = ROOT / "tests" / "browser" / "vendor" / "axe.min.js"
# Run in the page: inject axe if needed, run it, and keep what a person needs to fix each.
RUN = """async () => {
  // Only our own pages (a test may serve a forged attacker page on the same origin).
  if (!document.querySelector("link[href='/static/app.css']")) return [];
  // One run at a time per page (a swap may come while the load's run is going).
  const run = () => window.axe.run(document, { resultTypes: ["violations"] });
  const next = (window.__axeBusy || Promise.resolve()).then(run);
  window.__axeBusy = next.catch(() => null);
  const result = await next;
  return result.violations.map(v => {
    const where = v.nodes.slice(0, 3).map(n => n.target.join(" ")).join(", ");
    return `${v.id} (${v.impact}): ${v.help} at ${where}`;
  });
}"""
# Ran by the page itself (init script) after each htmx swap: tells the test side to look.
AFTER_SWAP = """
document.addEventListener("htmx:afterSettle", () => {
  if (window.__axeSwapped) window.__axeSwapped();
});
"""
# While a navigation replaces the document, the run is lost: the new page gets its own.
GONE = (
    "Execution context was destroyed",
    "Target page, context or browser has been closed",
    "navigation",
    "Frame was detached",
)


def axe_source() -> str:
    if not AXE_PATH.exists():
        raise FileNotFoundError(f"{AXE_PATH} is missing: run `bash scripts/install.sh test`")
    return Path(AXE_PATH).read_text()


class AxeWatch:
    """Runs axe on a page at each load and swap; collects violations per URL."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self.states = 0
        self.js = True

    def final(self, page: Any) -> None:
        """The state the test left the page in. Without JavaScript every state is a page
        load, already checked (and a run started after the test may never settle there)."""
        if self.js:
            self.run(page)

    def attach(self, page: Any, *, js: bool) -> None:
        self.js = js
        page.on("load", lambda: self.run(page))
        if js:
            page.context.add_init_script(AFTER_SWAP)
            page.expose_function("__axeSwapped", lambda: self.run(page))

    def run(self, page: Any) -> None:
        if page.is_closed():
            return
        url = page.url
        try:
            # Evaluated through the DevTools protocol, so the page's CSP (no eval) allows it.
            if not page.evaluate("() => !!window.axe"):
                page.evaluate(self.source)
            found = page.evaluate(RUN)
        except Exception as exc:  # a page gone mid-run is not a finding
            if any(g in str(exc) for g in GONE):
                return
            raise
        self.states += 1
        self.problems.extend(f"axe on {url}: {v}" for v in found)
