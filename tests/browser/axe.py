"""axe-core (vendored: tests/browser/vendor/axe-core, the npm package's axe.min.js and its licence; never a CDN) run
in a Playwright page. Evaluated through the DevTools protocol, which the page's CSP does not govern, so the app's
CSP stays as it is in production while axe reads the page."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

AXE_JS = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
#: the impacts the issue forbids
FORBIDDEN = ("serious", "critical")
#: axe's rules that a form control or a button has a name a screen reader reads out
LABEL_RULES = frozenset({"label", "select-name", "aria-input-field-name", "button-name", "input-button-name",
                         "label-title-only"})

RUN = """() => axe.run(document, {resultTypes: ["violations"]}).then((result) => result.violations.map((rule) => ({
  id: rule.id, impact: rule.impact, help: rule.help, count: rule.nodes.length,
  nodes: rule.nodes.slice(0, 5).map((node) =>
    node.target.join(" ") + (node.any.length ? ` (${node.any[0].message})` : ""))})))"""


def violations(page) -> list[dict]:
    """axe's violations of the page as it is now: rule id, impact, help text, the first few elements — once the page
    has loaded (a click that navigates returns when the new page starts loading: its stylesheets may not apply yet,
    and axe would judge colours against Bootstrap's defaults alone)."""
    page.wait_for_load_state("load")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;true")
    return page.evaluate(RUN)


def by_impact(found: list[dict]) -> Counter[str]:
    """Elements in violation, counted by impact (a rule broken by three fields counts three)."""
    counts: Counter[str] = Counter()
    for rule in found:
        counts[rule["impact"]] += rule["count"]
    return counts


def forbidden(found: list[dict]) -> list[str]:
    """The violations the test refuses: serious or critical, and any unlabelled control whatever its impact."""
    return [f"{rule['impact']} {rule['id']}: {rule['help']} — {', '.join(rule['nodes'])}" for rule in found
            if rule["impact"] in FORBIDDEN or rule["id"] in LABEL_RULES]
