"""The page at / in a real browser (headless Chromium driven by selenium, on 127.0.0.1): type a
sentence, wait for the trace, and check that the tokens and their colours are the ones the API
returns. PASSAGE_UPDATE_SCREENSHOT=1 also saves the screenshot as docs/img/serve.png."""

import os
import shutil
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra: pip install -e '.[serve]'")
pytest.importorskip("selenium", reason="the test extra: pip install -e '.[test]'")
import httpx  # noqa: E402
import uvicorn  # noqa: E402

from passage.io import save  # noqa: E402
from passage.recipe import TextModelOptions, fit_text_model  # noqa: E402
from passage.serve import create_app  # noqa: E402
from passage.serve.server import bind  # noqa: E402

SCREENSHOT = os.path.join(os.path.dirname(__file__), "..", "docs", "img", "serve.png")
SENTENCE = "The film was lovely and fun, but the ending was dull."


def sentiment_model():
    rng = np.random.default_rng(0)
    good, bad = ["lovely", "fun", "great", "good"], ["dull", "awful", "bad", "boring"]
    filler = ["the", "film", "was", "and", "but", "ending", "story", ","]
    texts, labels = [], []
    for i in range(300):
        words = list(rng.choice(good if i % 2 else bad, 2)) + list(rng.choice(filler, 4))
        texts.append(" ".join(rng.permutation(words)))
        labels.append("pos" if i % 2 else "neg")
    return fit_text_model(texts, labels, options=TextModelOptions(
        size=16, embedding_size=16, n_epochs=10, min_df=1, lr=0.01, validation_split=0.0))


@pytest.fixture
def server(tmp_path):
    path = tmp_path / "sentiment.passage"
    save(sentiment_model(), path)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(path), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield url
    server.should_exit = True
    thread.join(30)
    sock.close()


def test_the_page_draws_the_trace_the_api_returns(server, chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,720", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.set_page_load_timeout(30)
        driver.get(server + "/")
        wait = WebDriverWait(driver, 20, poll_frequency=0.1)
        wait.until(lambda d: d.find_element(By.ID, "meta").text)  # metadata shown
        driver.find_element(By.ID, "text").send_keys(SENTENCE)
        expected = httpx.post(server + "/trace", json={"inputs": SENTENCE}, timeout=10).json()
        answer = httpx.post(server + "/predict", json={"inputs": SENTENCE}, timeout=10).json()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#trace .token"))
                   == len(expected["tokens"]))
        spans = driver.find_elements(By.CSS_SELECTOR, "#trace .token")
        assert [s.text for s in spans] == [t["token"] for t in expected["tokens"]]
        shown = [s.value_of_css_property("background-color") for s in spans]
        assert shown == ["rgba({}, {}, {}, 1)".format(*t["rgb"]) for t in expected["tokens"]]
        assert len(set(shown)) > 3  # the colours change as the model reads
        assert driver.find_element(By.ID, "trace").text.replace("\n", " ") == SENTENCE
        assert driver.find_element(By.ID, "label").text == answer[0]["label"]
        assert driver.find_element(By.ID, "score").text == f"{answer[0]['score']:.3f}"
        meta = driver.find_element(By.ID, "meta").text
        assert "binary" in meta and "neg, pos" in meta
        assert driver.find_element(By.ID, "error").text == ""
        shot = tmp_path / "serve.png"
        assert driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("PASSAGE_UPDATE_SCREENSHOT"):
            shutil.copyfile(shot, SCREENSHOT)
    finally:
        driver.quit()
