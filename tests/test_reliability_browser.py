"""Markup is rendered inert: in a real browser (Debian's /usr/bin/chromium through Playwright), a
visitor's prompt, the models' answers, the model names and stored battles full of ``<script>``,
``<img onerror>``, ``<svg onload>``, ``javascript:`` links and ``<iframe srcdoc>`` travel through
every tab (chat, its routing card and "why" panel, the arena and its vote reveal, the leaderboard,
the data tab), and none of it runs: no ``window.__pwned``, no changed title, no dialog, no element
carrying the payload's handlers. The models are a FAKE upstream answering with the payloads (a real
model cannot be made to); the page, the app and the store are real.

Waits are for ``domcontentloaded`` and for elements, never ``networkidle``.
"""

from pathlib import Path

import pytest

from test_reliability_support import XSS_TEXT, FakeUpstream, fake_endpoint, make_runtime, serve_app, small_config

CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium); browser tests skipped",
                allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(__file__).parent / "artifacts"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
TIMEOUT_MS = 60_000
EVIL_NAME = 'Strong <img src=x onerror="window.__pwned=\'name\'"> model'
# What must stay absent from the page: the payloads' effects, and elements still carrying them.
PWNED_JS = """() => ({
  pwned: window.__pwned === undefined ? null : String(window.__pwned),
  title: document.title,
  live: [...document.querySelectorAll('[onerror], [onload], [onclick], [onmouseover], iframe[srcdoc]')]
          .filter(el => /pwned|PWNED/.test(el.outerHTML)).map(el => el.outerHTML.slice(0, 120)),
  links: [...document.querySelectorAll('a[href]')].filter(a => /^\\s*javascript:/i.test(a.getAttribute('href')))
          .map(a => a.outerHTML.slice(0, 120)),
  // a <script> that came with a payload (Gradio's own config script holds the texts as JSON data)
  scripts: [...document.scripts].filter(s => s.textContent.includes('__pwned')
                                          && !s.textContent.includes('gradio_config')).length,
})"""


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("xss")
    with FakeUpstream() as fake:
        fake.answers["strong-m"] = "Strong says: " + XSS_TEXT
        fake.answers["weak-m"] = "Weak says: " + XSS_TEXT
        cfg = small_config(tmp, strong=fake_endpoint(fake.url, "strong-m", EVIL_NAME),
                           weak=fake_endpoint(fake.url, "weak-m", "Weak <svg onload=\"window.__pwned='weak'\"></svg>"))
        rt = make_runtime(cfg)
        # stored history with markup in prompts and in model names (as an import could bring)
        rt.store.add_battles([dict(prompt=f"Past question {i}: {XSS_TEXT}", model_a="gpt-4-1106-preview",
                                   model_b="<img src=x onerror=\"window.__pwned='import'\">", winner=w,
                                   strong_side="a", source="import:<b onmouseover=\"window.__pwned='src'\">x</b>")
                              for i, w in enumerate(("model_a", "model_b", "tie"))])
        try:
            with serve_app(rt) as url:
                yield url, rt
        finally:
            rt.close()


def assert_inert(page, where: str, dialogs: list) -> None:
    page.wait_for_timeout(700)  # give an <img onerror> time to fire, if it could
    state = page.evaluate(PWNED_JS)
    assert state["pwned"] is None, f"{where}: payload ran ({state['pwned']})"
    assert state["title"] != "PWNED" and not dialogs, (where, state["title"], dialogs)
    assert state["live"] == [] and state["links"] == [] and state["scripts"] == 0, (where, state)


def test_markup_in_prompts_answers_names_and_stored_battles_is_inert(served):
    url, rt = served
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#prompt textarea")
            assert_inert(page, "page load", dialogs)
            expect(page.locator("#header")).to_contain_text("<img src=x onerror=")  # names shown as text

            # chat: the prompt and the answer are full of markup
            page.fill("#prompt textarea", XSS_TEXT)
            page.press("#prompt textarea", "Enter")
            expect(page.locator("#routing-details")).to_contain_text("This answer", timeout=TIMEOUT_MS)
            expect(page.locator("#chatbot")).to_contain_text("says:")
            expect(page.locator("#why")).to_contain_text("<script>window.__pwned")  # past prompts as text
            assert_inert(page, "chat", dialogs)
            page.screenshot(path=str(ARTIFACTS / "xss_chat.png"), full_page=True)

            # arena: both answers, then the vote reveal with the names
            page.get_by_role("tab", name="Arena").click()
            page.fill("#arena-prompt textarea", XSS_TEXT)
            page.press("#arena-prompt textarea", "Enter")
            expect(page.locator("#vote-A")).to_be_visible(timeout=TIMEOUT_MS)
            assert_inert(page, "arena answers", dialogs)
            page.click("#vote-A")
            expect(page.locator("#vote-result")).to_contain_text("What changed", timeout=TIMEOUT_MS)
            expect(page.locator("#vote-result")).to_contain_text("onerror=")  # the evil name, as text
            assert_inert(page, "vote reveal", dialogs)
            page.screenshot(path=str(ARTIFACTS / "xss_arena.png"), full_page=True)

            # leaderboard and data: stored names, sources and prompts
            page.get_by_role("tab", name="Leaderboard").click()
            expect(page.locator("#lb-all")).to_contain_text("onerror", timeout=TIMEOUT_MS)
            assert_inert(page, "leaderboard", dialogs)
            page.get_by_role("tab", name="Data").click()
            expect(page.locator("#recent")).to_contain_text("<script>", timeout=TIMEOUT_MS)
            expect(page.locator("#counts")).to_contain_text("onmouseover")
            assert_inert(page, "data", dialogs)
            page.screenshot(path=str(ARTIFACTS / "xss_data.png"), full_page=True)
        finally:
            browser.close()
    assert rt.store.battles(source="arena-vote")[0]["prompt"] == XSS_TEXT  # stored verbatim, harmless as data


def test_images_in_answers_and_prompts_fetch_nothing_from_other_hosts(tmp_path):
    """A Markdown image or an <img> in a model's answer (or a visitor's prompt) must not make the
    viewer's browser fetch it: a tracking pixel. A loopback server on another port stands in for the
    other host and counts requests; the app's Content-Security-Policy allows images from itself only."""
    import http.server
    import threading

    hits: list[str] = []

    class Pixel(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/gif")
            self.end_headers()
            self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

        def log_message(self, *args):
            pass

    pixel = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pixel)
    threading.Thread(target=pixel.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{pixel.server_address[1]}"
    markup = f'![pixel]({base}/md.gif) and <img src="{base}/html.gif"> done'
    try:
        with FakeUpstream() as fake:
            fake.answers["strong-m"] = fake.answers["weak-m"] = "Here: " + markup
            rt = make_runtime(small_config(tmp_path, strong=fake_endpoint(fake.url, "strong-m", "Strong"),
                                           weak=fake_endpoint(fake.url, "weak-m", "Weak")))
            try:
                with serve_app(rt) as url, sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                    try:
                        page = browser.new_page(viewport={"width": 1400, "height": 1000})
                        page.set_default_timeout(TIMEOUT_MS)
                        page.goto(url, wait_until="domcontentloaded")
                        page.wait_for_selector("#prompt textarea")
                        page.fill("#prompt textarea", "Show me " + markup)
                        page.press("#prompt textarea", "Enter")
                        expect(page.locator("#routing-details")).to_contain_text("This answer", timeout=TIMEOUT_MS)
                        expect(page.locator("#chatbot")).to_contain_text("done")
                        page.wait_for_timeout(1500)  # time for the browser to fetch the images, if it may
                        shown = page.locator("#chatbot img").count()
                    finally:
                        browser.close()
            finally:
                rt.close()
    finally:
        pixel.shutdown()
    assert shown >= 2  # the images are in the page (as Markdown renders them), and yet...
    assert hits == [], f"the browser fetched {hits} from another host"
