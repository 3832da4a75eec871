"""End to end in a real browser: headless Debian Chromium, driven by Selenium, types a
query into the served page and checks that results and their explanations appear.

The browser comes from Debian's packages (chromium, chromium-driver), which `make test`
installs before it runs pytest (its step `make browser-deps`; the test tool never downloads
a browser of its own). The test itself installs nothing: when the browser or the Python
packages are missing it fails and says how to get them, it never skips.
"""

import importlib.util
import os
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.browser

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER)
               if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.fail(f"the browser test needs Debian's chromium and chromium-driver, but "
                    f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing: "
                    f"run `make test` (its step `make browser-deps` installs them) or "
                    f"`apt-get install chromium chromium-driver`", pytrace=False)


def require_modules(*names: str) -> None:
    missing = [n for n in names if importlib.util.find_spec(n) is None]
    if missing:
        pytest.fail(f"the browser test needs {', '.join(missing)} (the test extra): run "
                    f"`make test` or `pip install -e \".[test]\"`", pytrace=False)


@pytest.fixture(scope="module", autouse=True)
def prerequisites():
    """Checked before the server fixture trains a model, so a missing browser fails at once."""
    require_chromium()
    require_modules("selenium", "uvicorn", "fastapi")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(prerequisites, request):
    import uvicorn

    from mia.serving.app import create_app

    port = free_port()
    index_dir = request.getfixturevalue("index_dir")  # after the checks: it trains a model
    config = uvicorn.Config(create_app(index_dir), host="127.0.0.1", port=port,
                            log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    assert srv.started, "server did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(prerequisites, tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1200,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_search_page_shows_results_with_explanations(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    box = browser.find_element(By.ID, "q")
    box.send_keys("A woman in a red t-shirt with a black backpack and blue jeans")
    browser.find_element(By.ID, "go").click()
    wait = WebDriverWait(browser, 30)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".card")))
    cards = browser.find_elements(By.CSS_SELECTOR, ".card")
    assert len(cards) >= 5
    status = browser.find_element(By.ID, "status").text
    assert "results from" in status
    # explanation 1: stripes shaded by the sentence's weights (RGA)
    stripes = cards[0].find_elements(By.CSS_SELECTOR, ".stripe")
    opacities = [float(s.value_of_css_property("opacity")) for s in stripes]
    assert len(stripes) == 6 and max(opacities) > 0 and len(set(opacities)) > 1
    # the image itself loaded from the gallery route
    img = cards[0].find_element(By.TAG_NAME, "img")
    assert browser.execute_script("return arguments[0].naturalWidth", img) > 0
    # explanation 2: hovering a noun phrase marks its best stripe in every image (BFM)
    chips = browser.find_elements(By.CSS_SELECTOR, ".phrase")
    assert [c.text for c in chips][:2] == ["a woman", "a red t-shirt"]
    ActionChains(browser).move_to_element(chips[1]).perform()
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".stripe.hit"))
    assert len(browser.find_elements(By.CSS_SELECTOR, ".stripe.hit")) == len(cards)


def test_empty_query_shows_the_servers_message(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server + "/")
    browser.find_element(By.ID, "q").send_keys("   ")
    browser.find_element(By.ID, "go").click()
    WebDriverWait(browser, 20).until(
        lambda d: "empty" in d.find_element(By.ID, "status").text)
    assert "error" in browser.find_element(By.ID, "status").get_attribute("class")
