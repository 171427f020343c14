"""A real PHP application through Atrium: Debian's DokuWiki on php-fpm, in the
layout an operator would write (an extension route runs the scripts, try_files
serves the files, the rest goes to the front controller), with DokuWiki's own
`/doku.php/page` URLs (userewrite 2), which need PATH_INFO. A script printing
its variables did not catch the missing PATH_INFO: the application did.

The wiki runs as its own "animal" of Debian's farm support: a configuration
directory under /etc/dokuwiki/farm named after this test's Host, removed at the
end, and a copy of the stock data in the test's directory."""

import re
import shutil
from pathlib import Path

import pytest

from conftest import get
from gateways import php_fpm  # noqa: F401  (pytest fixture)

DOKU = Path("/usr/share/dokuwiki")
FARM = Path("/etc/dokuwiki/farm")


@pytest.fixture
def wiki(tmp_path):
    if not (DOKU / "doku.php").exists():
        pytest.fail("dokuwiki is not installed (tools/dev installs it)")
    data = tmp_path / "data"
    shutil.copytree("/var/lib/dokuwiki/data", data, symlinks=True)
    made = []

    def animal(host):
        d = FARM / host
        d.mkdir(parents=True, exist_ok=False)
        made.append(d)
        (d / "local.php").write_text("<?php\n$conf['savedir'] = '%s';\n$conf['userewrite'] = 2;\n"
                                     "$conf['useacl'] = 0;\n$conf['title'] = 'Atrium test wiki';\n"
                                     % data)
        return d
    yield animal
    for d in made:
        shutil.rmtree(d, ignore_errors=True)


def test_dokuwiki_pages_media_and_files(atrium, php_fpm, wiki):
    fpm = php_fpm()
    a = atrium("""
upstream php { protocol fastcgi; server %s; }
host * {
    route *.php { proxy php; root %s; }
    route / { proxy php; root %s; index doku.php; try_files %s; }
}""" % (fpm.addr, DOKU, DOKU, DOKU), )
    host = "127.0.0.1:%d" % a.port
    wiki("%d.127.0.0.1" % a.port)

    def page(path):
        r = get(a.port, path, host=host)
        assert r.status == 200, (path, r.status, r.body[:300])
        return r.body.decode("utf-8", "replace")
    # the classic URL, and DokuWiki's own /doku.php/page form (PATH_INFO)
    classic = page("/doku.php?id=wiki:syntax")
    assert "Atrium test wiki" in classic and "Formatting Syntax" in classic, classic[:500]
    pretty = page("/doku.php/wiki:syntax")
    assert "Formatting Syntax" in pretty, pretty[:500]
    # links the wiki writes are in the same form: it saw PATH_INFO work
    assert re.search(r'href="/doku\.php/wiki:', pretty), pretty[:2000]
    # media through fetch.php with PATH_INFO (400 before)
    r = get(a.port, "/lib/exe/fetch.php/wiki:dokuwiki-128.png", host=host)
    assert r.status == 200 and r.body[:8] == b"\x89PNG\r\n\x1a\n", (r.status, r.body[:200])
    # a file of the template, served as a file; the stylesheet the wiki builds
    r = get(a.port, "/lib/tpl/dokuwiki/images/button-dw.png", host=host)
    assert r.status == 200 and r.get("etag") and r.body[:4] == b"\x89PNG", r
    r = get(a.port, "/lib/exe/css.php?t=dokuwiki", host=host)
    assert r.status == 200 and b"{" in r.body, r
    # / runs the front controller: the start page
    assert "Atrium test wiki" in page("/")
    # the source of a script is never sent
    r = get(a.port, "/doku.php", host=host)
    assert b"<?php" not in r.body
