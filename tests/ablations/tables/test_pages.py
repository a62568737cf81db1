"""results/index.html in a real headless browser (Debian's chromium): every page loads without
a console error, fits 1,400 pixels, every image is drawn and every link resolves; a
screenshot of the index is kept under test-artifacts/. Skipped, with the reason, where no
browser can be had."""
from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from ablations.report import main as report
from tests.ablations.tables.test_report import runs  # noqa: F401 - the fixture grid of run folders
from tests.conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts"
WIDTH = 1400  # every page's tables fit a window this wide: no sideways scrolling


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (binary and driver_path):
        pytest.skip("no chromium/chromedriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={WIDTH},2000",
                "--allow-file-access-from-files"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver_path),
                              options=options)
    yield driver
    driver.quit()


def _check_page(driver, page: Path) -> list[Path]:
    """Load `page`; assert no console error and every image drawn; return its local links."""
    from selenium.webdriver.common.by import By

    driver.get(page.as_uri())
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, (page.name, errors)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    assert width <= WIDTH, (page.name, width)
    for img in driver.find_elements(By.TAG_NAME, "img"):
        width = driver.execute_script("return arguments[0].naturalWidth", img)
        assert width > 0, (page.name, img.get_attribute("src"))
    links = []
    for a in driver.find_elements(By.TAG_NAME, "a"):
        url = urlparse(a.get_attribute("href"))
        if url.scheme == "file":
            target = Path(unquote(url.path))
            assert target.exists(), (page.name, target)
            links.append(target)
    return links


def test_the_results_page_loads_and_every_image_and_link_resolves(runs, tmp_path,  # noqa: F811
                                                                  browser):
    out = tmp_path / "results"
    assert report(["--runs-dir", str(runs), "--out", str(out)]) == 0
    index = out / "index.html"
    pages = [p for p in _check_page(browser, index) if p.suffix == ".html"]
    assert out / "gradient_clipping.html" in pages
    for page in pages:
        _check_page(browser, page)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.get(index.as_uri())
    assert browser.save_screenshot(str(ARTIFACTS / "index.png"))
    browser.get((out / "gradient_clipping.html").as_uri())
    assert browser.save_screenshot(str(ARTIFACTS / "gradient_clipping.png"))
    text = browser.page_source
    assert "supported" in text and "figures/gradient_clipping.png" in text
    browser.get(index.as_uri())
    assert "The paper's claims and what we found" in browser.page_source


def test_what_the_pages_link_is_not_ignored_by_git():
    """The pages link each run's files under results/runs/; a .gitignore that matched them
    (`runs/` did) shipped pages whose run links led nowhere."""
    git = shutil.which("git")
    if not (git and (ROOT / ".git").exists()):
        pytest.skip("not a git checkout")
    import subprocess

    paths = ["results/runs/0123456789ab/curve.png", "results/runs/0123456789ab/result.json",
             "results/figures/main_table.png", "results/index.html"]
    ignored = subprocess.run([git, "check-ignore", *paths], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert not ignored, ignored
    assert subprocess.run([git, "check-ignore", "-q", "runs/0123456789ab/weights.pth"],
                          cwd=ROOT).returncode == 0  # the runs folder itself stays out
