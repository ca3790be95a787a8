"""``explicable-jax demo``: the report is written, self-contained, and renders
in a real browser (headless Chromium, Debian's ``chromium`` package)."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from explicable_jax.app import cli
from explicable_jax.app.html_report import HtmlReport


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  out = tmp_path_factory.mktemp("demo")
  assert cli.main(["demo", "--quick", "--no-progress", "--out", str(out)]) == 0
  path = out / "report.html"
  assert path.exists()
  return path


def test_demo_report_is_the_audit_with_every_section(report):
  text = report.read_text()
  for anchor in ("summary", "mistakes", "detection", "reliance", "hesitation", "robustness",
                 "faithfulness", "settings"):
    assert f'id="{anchor}"' in text and f'href="#{anchor}"' in text
  assert text.count("<img ") >= 4  # mistakes, detection, reliance, hesitation
  assert "hard score" in text and "AUROC" in text and "gradient share on the annotation" in text
  assert "Spearman, randomised model" in text and "insertion AUC" in text
  # Self-contained: no file, http or relative references.
  assert not re.search(r'(src|href)="(?!data:image/png;base64,|#)', text)
  # The summary comes first and the detection table starts with the baseline.
  assert text.index('id="summary"') < text.index('id="mistakes"')
  rows = re.findall(r"<tr><td>([^<]+)</td><td>(0\.\d{4}|1\.0000)</td>", text[
      text.index('id="detection"'):text.index('id="reliance"')])
  names = [n for n, _ in rows]
  assert names[:1] == ["MSP"], names
  assert "LCR" in names and "combination (LDA)" in names
  # The exact command is on the page and in command.txt.
  command = (report.parent / "command.txt").read_text().strip()
  assert command.startswith("explicable-jax audit --model ") and command.split()[3] in text


_ERRORS = """<head><script>
window.__errors = 0;
window.addEventListener('error', () => { window.__errors++; }, true);
const __error = console.error;
console.error = (...a) => { window.__errors++; __error(...a); };
</script>"""

_CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
  const links = [...document.querySelectorAll('a[href]')];
  const dead = links.filter(a => {
    const h = a.getAttribute('href');
    return !h.startsWith('#') || !document.getElementById(h.slice(1));
  }).length;
  document.body.setAttribute('data-check',
      `images=${imgs.length} broken=${broken} links=${links.length} dead=${dead} ` +
      `errors=${window.__errors}`);
});
</script></body>"""


def _chromium():
  for name in ("chromium", "chromium-browser", "google-chrome"):
    if shutil.which(name):
      return shutil.which(name)
  pytest.skip("no headless Chromium (apt-get install chromium; .ci/run installs it)")


def _render(browser, page):
  out = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
  found = re.search(r'data-check="([^"]*)"', out.stdout)
  assert found, f"the page did not finish loading: {out.stderr[-2000:]}"
  return dict(kv.split("=") for kv in found.group(1).split())


def test_demo_report_renders_in_headless_chromium(report, tmp_path):
  browser = _chromium()
  page = tmp_path / "checked.html"
  page.write_text(report.read_text().replace("<head>", _ERRORS).replace("</body>", _CHECK))
  result = _render(browser, page)
  assert int(result["images"]) >= 4
  assert result["broken"] == "0" and result["errors"] == "0", result
  assert int(result["links"]) >= 4 and result["dead"] == "0", result


def test_the_browser_check_catches_broken_images_and_dead_links(tmp_path):
  """The check above can fail: a report with a corrupt PNG and a link to a
  missing section is caught."""
  browser = _chromium()
  r = HtmlReport("broken")
  r.section("ok", "A section")
  r.png(b"\x89PNG\r\n\x1a\nnot really a png")
  page = tmp_path / "broken.html"
  html = r.render().replace('href="#ok"', 'href="#missing"').replace("</body>", _CHECK)
  page.write_text(html.replace("<head>", _ERRORS))
  result = _render(browser, page)
  assert result["broken"] == "1" and result["dead"] == "1", result
  assert int(result["errors"]) >= 1, result  # the image's load error is counted


def test_html_report_rejects_bad_parts():
  r = HtmlReport("t")
  with pytest.raises(ValueError, match="anchor"):
    r.section("Bad Anchor", "x")
  r.section("a", "x")
  with pytest.raises(ValueError, match="already"):
    r.section("a", "y")
  with pytest.raises(ValueError, match=r"rows\[0\] has 1 cells"):
    r.table(["a", "b"], [[1]])
  with pytest.raises(ValueError, match="PNG"):
    r.png(b"GIF89a")
