"""Load every page of the smoke book in headless Chromium, served on 127.0.0.1.

Checks: every table-of-contents entry has a page; every image the browser requested was
served (no 404) and is non-empty; every internal link resolves; a screenshot of the
index is written to the build directory. Skipped when Chromium is absent (.ci/run
installs it with apt-get).
"""
import functools
import re
import http.server
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from urllib.parse import unquote, urljoin, urlparse

import pytest

from mmlab import book

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed "
                                "(apt-get install -y chromium; .ci/run does this)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--virtual-time-budget=4000"]


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img" and a.get("src"):
            self.imgs.append(a["src"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])


@pytest.fixture(scope="module")
def server(smoke_book):
    html = smoke_book[0] / "html"
    log = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_request(self, code="-", size="-"):
            log.append((self.path, int(code) if str(code).isdigit() else code))

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(html)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", html, log
    httpd.shutdown()


def chromium(url, tmp_path, *extra):
    p = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *extra, url],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_every_page_loads_with_images_and_links(server, tmp_path):
    base, html, log = server
    pages = ["index.html"] + [f"{f}.html" for f in book.toc_files(book.ROOT / "_toc.yml")]
    for page in pages:
        assert (html / page).exists(), f"toc entry {page} has no page"
        redirect = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', (html / page).read_text(), re.I)
        if redirect:      # Jupyter Book's index.html redirects to the root chapter
            page = urljoin(page, redirect.group(1))
            assert (html / page).exists(), f"index redirects to a missing page {page}"
        log.clear()
        dom = chromium(base + page, tmp_path, "--dump-dom")
        parser = _Links()
        parser.feed(dom)
        assert "<article" in dom or "bd-article" in dom, f"{page}: no article rendered"
        # /favicon.ico is the browser's own probe of the site root, not a resource of the page
        failed = [(path, code) for path, code in log if code not in (200, 304) and path != "/favicon.ico"]
        assert not failed, f"{page}: the browser's requests failed: {failed}"
        for src in parser.imgs:
            if src.startswith("data:"):
                assert len(src) > 100, f"{page}: empty inline image"
                continue
            target = html / unquote(urlparse(urljoin(base + page, src)).path.lstrip("/"))
            assert target.exists() and target.stat().st_size > 0, f"{page}: image {src} missing/empty"
        for href in parser.links:
            url = urlparse(urljoin(base + page, href))
            if url.netloc != urlparse(base).netloc or not url.path.endswith(".html"):
                continue
            assert (html / unquote(url.path.lstrip("/"))).exists(), f"{page}: broken link {href}"


def test_notebook_pages_show_their_figures(server, tmp_path):
    base, html, _ = server
    for nb in ("00-benchmarks", "01-modality-imbalance"):
        parser = _Links()
        parser.feed(chromium(base + f"notebooks/{nb}.html", tmp_path, "--dump-dom"))
        assert len(parser.imgs) >= 2, f"{nb}: expected figures, found {parser.imgs}"


def test_index_screenshot(server, tmp_path, smoke_book):
    base, _, _ = server
    shot = smoke_book[0] / "index.png"
    chromium(base + "index.html", tmp_path, f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.exists() and shot.stat().st_size > 10_000
