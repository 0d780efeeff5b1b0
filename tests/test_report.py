"""mmlab.report: verdict badges, claims tables in their units, the claims page grouped by paper
and artifact, the intro's scoreboard, standings and chapter list, the smoke banner, and the
staging of the book's CSS. No notebook is executed here."""
import ast
import html
import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mmlab import book, report
from mmlab.claims import VERDICTS, Claim, Ledger, check, format_effect

ROOT = Path(__file__).resolve().parents[1]
REP, NOT, INC = [0.05, 0.06, 0.055], [-0.05, -0.06, -0.055], [0.1, -0.2, 0.3]     # one diff list per verdict


class Elements(HTMLParser):
    """Every element's tag, attributes and text (its own and its descendants'), in document order."""

    def __init__(self, text: str):
        super().__init__()
        self.elements, self.open = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "attrs": dict(attrs), "text": ""}
        self.elements.append(el)
        if tag not in ("br", "col", "img", "input", "meta", "link", "wbr"):
            self.open.append(el)

    def handle_endtag(self, tag):
        while self.open:
            if self.open.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for el in self.open:
            el["text"] += data

    def find(self, tag, cls=None, **attrs):
        return [e for e in self.elements if e["tag"] == tag
                and (cls is None or cls in e["attrs"].get("class", "").split())
                and all(e["attrs"].get(k.replace("_", "-")) == v for k, v in attrs.items())]


def text(s: str) -> str:
    return " ".join(html.unescape(s).replace("\xa0", " ").split())


def ledger(name="40-x", profile="quick") -> Ledger:
    """Claims of two papers, three artifacts (two whose slugs collide), two datasets, every verdict."""
    led = Ledger(name, profile)
    led.check("a@eq", "ReconBoost", "Tables 1-2, Sec. 4.2", "A beats B", "avmnist", "acc(A) - acc(B)", REP,
              reported="ReconBoost Table 1, Acc: Ours 79.82 vs B 63.81 (CREMA-D)", protocol="equal budget")
    led.check("a@pa", "ReconBoost", "Tables 1-2, Sec. 4.2", "A beats B", "avmnist", "acc(A) - acc(B)", NOT,
              reported="ReconBoost Table 1, Acc: Ours 79.82 vs B 63.81 (CREMA-D)", protocol="paper recipe")
    led.check("b", "ReconBoost", "Tables 1-2, Sec. 4.2", "A beats C", "mfeat", "acc(A) - acc(C)", INC)
    led.check("c", "ReconBoost", "Table 5, Sec. 4.3", "probe", "mfeat", "probe(A) - probe(B)", [1e-5, 2e-5, 3e-5])
    led.check("d", "ReconBoost", "Table 5 / Sec. 4.3", "dmc", "avmnist", "DMC(concat) - 1", [0.3, 0.2, 0.25],
              unit="ratio")
    led.check("e", "MLA", "Table 1", "weak used less", "avmnist", "acc(alone) - joint-only", [0.02] * 3)
    return led


# --- badges and units ------------------------------------------------------------------------
def test_badge_per_verdict_has_its_class_colour_and_text_label():
    css = (ROOT / "book" / "_static" / "mmlab.css").read_text()
    for verdict in (*VERDICTS, "untested"):
        b = report.badge(verdict)
        cls = "mmlab-" + verdict.replace(" ", "-")
        assert b == f'<span class="mmlab-badge {cls}">{verdict}</span>'
        assert re.search(rf"\.mmlab-badge\.{cls}\s*{{[^}}]*background", css), f"no colour for {verdict}"
    assert report.badge("inconclusive", "3 inconclusive").endswith(">3 inconclusive</span>")
    with pytest.raises(ValueError, match="unknown verdict"):
        report.badge("reproducd")


def test_effects_are_shown_in_points_or_as_ratios():
    assert format_effect(0.0421, 0.0112, 3) == "+4.2 ± 1.1 pts"
    assert format_effect(-0.5, 0.02, 3, "ratio") == "-0.50 ± 0.02"
    assert format_effect(0.042, float("nan"), 1) == "+4.2 pts" and format_effect(float("nan"), None, 0) == "—"
    c = check("r", "P", "s", "st", "d", "DMC(concat) - 1", [0.3, 0.2, 0.25], unit="ratio")
    assert c.shown_effect == "+0.25 ± 0.05" and c.effect(scale=100) == "+0.25 ± 0.05"    # a ratio is never x100
    assert check("p", "P", "s", "st", "d", "m", REP).shown_effect == "+5.5 ± 0.5 pts"
    with pytest.raises(ValueError, match="unit"):
        check("x", "P", "s", "st", "d", "m", REP, unit="percent")
    row = next(r for r in Elements(report.claims_table(ledger().to_frame())).find("tr") if "dmc" in r["text"])
    assert "+0.25 ± 0.05" in text(row["text"]) and "pts" not in row["text"]


def test_unit_is_saved_and_old_ledgers_without_it_or_standings_still_load(tmp_path):
    led = Ledger("41-x", "quick")
    led.check_supported((True, "T11"), "dmc", "ReconBoost", "T11", "st", "avmnist", "1 - DMC", [0.1, 0.2, 0.3],
                        unit="ratio")
    back = Ledger.load(led.save(tmp_path))
    assert back.claims[0].unit == "ratio" and back.claims[0].reported == "T11"
    old = {"notebook": "40-old", "profile": "quick", "claims": [
        {k: v for k, v in check("o", "P", "s", "st", "d", "m", REP).to_dict().items() if k != "unit"}]}
    (tmp_path / "40-old.json").write_text(json.dumps(old))
    loaded = Ledger.load(tmp_path / "40-old.json")
    assert loaded.claims[0].unit == "points" and loaded.standings == []
    assert "unit" not in old["claims"][0]


def test_dmc_claims_of_the_papers_are_ratios():
    """Every claim call in mmlab/papers whose measure names DMC passes unit="ratio"."""
    found = []
    for path in (ROOT / "mmlab" / "papers").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("check", "check_supported"):
                strings = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
                if any("DMC(" in s for s in strings):
                    unit = {k.arg: getattr(k.value, "value", None) for k in node.keywords}.get("unit")
                    found.append((path.name, node.lineno, unit))
    assert len(found) >= 3 and all(u == "ratio" for _, _, u in found), found


# --- claims tables ---------------------------------------------------------------------------
def test_claims_table_has_every_claim_with_its_badge_last_and_no_raw_floats():
    df = ledger().to_frame()
    page = report.claims_table(df)
    doc = Elements(page)
    assert "table-layout" not in page      # the layout is the CSS's, checked below
    heads = [text(th["text"]) for th in doc.find("th")]
    assert heads[0] == "claim" and heads[-1] == "verdict" and {"our dataset", "protocol", "n"} <= set(heads)
    rows = doc.find("tbody")[0]["text"]
    trs = doc.find("tr")[1:]                   # the first is the header
    assert len(trs) == len(df)
    for tr, claim in zip(trs, df.to_dict("records")):
        t = text(tr["text"])
        assert claim["statement"] in t and t.endswith(claim["verdict"]) and claim["dataset"] in t
        assert all(part in t for part in claim["deciding_p"].split(", "))      # one per line
    assert [text(s["text"]) for s in doc.find("span", "mmlab-badge")] == df["verdict"].tolist()
    cells = [text(td["text"]) for td in doc.find("td")]
    raw = [c for c in cells if re.search(r"\de-\d|\d\.\d{4,}", c)]
    assert len(cells) == 7 * len(df) and not raw, f"raw floats in the table: {raw}"
    assert "reported: ReconBoost Table 1, Acc: Ours 79.82" in text(rows)
    assert "+0.0 ± 0.0 pts" in text(rows) and "— (zero variance)" in text(rows)


def test_the_css_keeps_claims_tables_and_dataframes_in_the_column():
    css = (ROOT / "book" / "_static" / "mmlab.css").read_text()
    block = re.search(r"table\.mmlab-claims-table\s*{([^}]*)}", css).group(1)
    assert "table-layout: fixed" in block and "width: 100%" in block
    widths = re.findall(r"col\.mmlab-c-[a-z]+ { width: (\d+)%; }", css)
    assert len(widths) == 7 and sum(map(int, widths)) == 100
    assert re.search(r"table\.dataframe\s*{[^}]*font-size", css)
    assert re.search(r":has\(table\.dataframe\)[^{]*{[^}]*overflow: auto", css)


def test_chapter_claims_shows_counts_table_and_collapsed_untested():
    led = ledger()
    led.check_supported((False, "ReconBoost Table 2, Acc: X 66.93 vs Concat 66.71 (MOSEI)"), "u", "ReconBoost",
                        "T2", "X improves on concat", "mfeat", "m", REP, protocol="equal budget")
    out = report.chapter_claims(led)
    doc = Elements(out.data)
    counts = text(doc.find("p", "mmlab-counts")[0]["text"])
    assert counts == "3 reproduced 2 not reproduced 1 inconclusive 1 untested"
    assert len(doc.find("table", "mmlab-claims-table")) == 2
    details = doc.find("details", "mmlab-untested")
    assert len(details) == 1 and "open" not in details[0]["attrs"]
    assert "X improves on concat" in details[0]["text"] and "66.93 vs Concat 66.71" in details[0]["text"]
    assert "X improves on concat" not in doc.find("table")[0]["text"]
    assert "untested" not in report.chapter_claims(ledger()).data.split("</p>", 1)[1]


# --- the claims page -------------------------------------------------------------------------
def test_claims_page_groups_by_paper_then_artifact_with_stable_unique_ids():
    df = ledger().to_frame()
    page = report.claims_page(df, "quick", untested=2, titles={"40-x": "ReconBoost (1): accuracy"})
    assert page.index("## MLA") < page.index("## ReconBoost")
    assert "```{admonition} The verdict rule\n:class: dropdown" in page
    assert "\n\n" not in "".join(re.findall(r"<details.*?</details>", page, re.S)), "a blank line ends an HTML block"
    doc = Elements(page)
    groups = doc.find("details", "mmlab-artifact")
    ids = [g["attrs"]["id"] for g in groups]
    assert len(ids) == 4 and len(set(ids)) == 4 and all(re.fullmatch(r"[a-z0-9-]+", i) for i in ids)
    assert "reconboost-tables-1-2-sec-4-2" in ids and "mla-table-1" in ids
    assert sum(i.startswith("reconboost-table-5-sec-4-3-") for i in ids) == 2      # colliding slugs, told apart
    for g in groups:
        assert "open" not in g["attrs"]
    big = doc.find("details", id="reconboost-tables-1-2-sec-4-2")[0]["text"]
    assert "A beats B" in big and "A beats C" in big and "probe" not in big
    assert text(doc.find("summary")[ids.index("reconboost-tables-1-2-sec-4-2")]["text"]).endswith(
        "1 reproduced 1 not reproduced 1 inconclusive")
    assert '<a href="../notebooks/40-x.html">ReconBoost (1): accuracy</a>' in page
    shuffled = df.sample(frac=1, random_state=random.Random(0).randint(0, 99))
    assert [g["attrs"]["id"] for g in Elements(report.claims_page(shuffled)).find("details")] == ids
    assert "2 untested" in text(page) and len(doc.find("table", "mmlab-claims-table")) == 4


def test_claims_page_without_claims_says_so():
    page = report.claims_page(ledger().to_frame().iloc[:0], "quick")
    assert "No claims were tested in this build." in page and "<details" not in page


# --- the intro -------------------------------------------------------------------------------
def test_scoreboard_has_one_cell_per_artifact_and_dataset_and_its_links_resolve():
    df = ledger().to_frame()
    board = Elements(report.scoreboard(df))
    cells = board.find("td", "mmlab-cell")
    keys = [(c["attrs"]["data-paper"], c["attrs"]["data-artifact"], c["attrs"]["data-dataset"]) for c in cells]
    assert len(keys) == len(set(keys)) and set(keys) == set(zip(df["paper"], df["source"], df["dataset"]))
    cell = next(c for c in cells if c["attrs"]["data-artifact"] == "Tables 1-2, Sec. 4.2"
                and c["attrs"]["data-dataset"] == "avmnist")
    assert text(cell["text"]) == "1 R · 1 NR · 0 I" and "mmlab-mixed" in cell["attrs"]["class"]
    mla = next(c for c in cells if c["attrs"]["data-paper"] == "MLA")
    assert "mmlab-reproduced" in mla["attrs"]["class"]
    ids = {e["attrs"]["id"] for e in Elements(report.claims_page(df)).elements if "id" in e["attrs"]}
    hrefs = [a["attrs"]["href"] for a in board.find("a")]
    assert hrefs and all(h.startswith("claims.html#") and h.split("#", 1)[1] in ids for h in hrefs)
    assert "No claim of ERL-MR, MIE was tested" in report.scoreboard(df)


def standings(n=3):
    rows = [{"method": m, "dataset": "avmnist", "protocol": "equal budget", "metric": "accuracy", "mean": v,
             "std": 0.01, "n": n, "source": "Table 1"} for m, v in (("concat", 0.80), ("reconboost", 0.85),
                                                                      ("ogm_ge", 0.85), ("gblend", 0.70))]
    rows += [{"method": m, "dataset": "mfeat", "protocol": "", "metric": "DMC", "mean": v, "std": None, "n": 1,
              "source": "Table 11", "better": "lower", "unit": "ratio"}
             for m, v in (("concat", 1.8), ("reconboost", 0.9))]
    return rows


def test_standings_round_trip_through_save_and_load_and_ranks_are_right(tmp_path):
    led = Ledger("40-x", "quick")
    led.add_standings(standings())
    led.add_standings([{**standings()[0], "mean": 0.81}])          # the same key replaces
    back = Ledger.load(led.save(tmp_path))
    assert back.standings == led.standings and len(back.standings) == 6
    assert json.loads((tmp_path / "40-x.json").read_text())["standings"][0]["mean"] == 0.81
    st = report.ranked(report.load_build(tmp_path, "quick").standings)
    rank = {(r["metric"], r["method"]): r["rank"] for r in st.to_dict("records")}
    assert rank == {("accuracy", "reconboost"): 1, ("accuracy", "ogm_ge"): 1, ("accuracy", "concat"): 3,
                    ("accuracy", "gblend"): 4, ("DMC", "reconboost"): 1, ("DMC", "concat"): 2}
    doc = Elements(report.standings_tables(st))
    assert len(doc.find("table", "mmlab-standings")) == 2
    best = [text(td["text"]) for td in doc.find("td", "mmlab-best")]
    assert best == ["85.0 ± 1.0 #1", "85.0 ± 1.0 #1", "0.90 #1"]
    order = [text(tr["text"]).split()[0][:6] for tr in doc.find("tr")[1:5]]
    assert order == ["ogm_ge", "reconb", "concat", "gblend"]                   # best mean rank first, ties by name
    for bad in ({**standings()[0], "n": 0}, {**standings()[0], "mean": float("nan")}, {"method": "x"},
                {**standings()[0], "better": "up"}, {**standings()[0], "colour": 1}):
        with pytest.raises(ValueError):
            Ledger("40-y").add_standings([bad])


def test_chapter_list_covers_every_toc_notebook_and_marks_papers_without_chapters(tmp_path):
    text_ = report.chapter_list(ROOT)
    for nb in book.toc_notebooks():
        assert f"<../notebooks/{nb.stem}>`" in text_ and report.notebook_title(nb) in text_
    lines = text_.splitlines()
    papers = [line for line in lines if line.startswith("* **")]
    assert [p.split("**")[1] for p in papers] == list(report.PAPERS.values())
    (tmp_path / "notebooks").mkdir()
    for stem, title in (("00-a", "Shared one"), ("31-b", "MLA one")):
        (tmp_path / "notebooks" / f"{stem}.ipynb").write_text(json.dumps(
            {"cells": [{"cell_type": "markdown", "id": "c0", "metadata": {}, "source": f"# {title}\n\ntext"}],
             "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/31-b\n"
                                       "  - file: notebooks/00-a\n  - file: book/claims\n")
    small = report.chapter_list(tmp_path)
    assert "* **MLA**\n  * {doc}`MLA one <../notebooks/31-b>`" in small
    assert "* **ERL-MR**: *chapters to come*." in small and "* **ReconBoost**: *chapters to come*." in small
    assert "* **MLA**: *chapters to come*" not in small and "claims" not in small


def test_intro_markers_are_filled_and_the_smoke_banner_shows_only_in_smoke(tmp_path):
    source = (ROOT / "book" / "intro.md").read_text()
    assert all(m in source for m in report.MARKERS.values())
    led = ledger()
    led.save(tmp_path)
    found = report.load_build(tmp_path, "quick")
    quick = report.render_intro(source, found, "quick", ROOT)
    smoke = report.render_intro(source, found, "smoke", ROOT)
    banner = "Smoke build: every number here comes from seconds-long runs and is not meaningful"
    assert banner in smoke and banner not in quick and "<!-- mmlab:" not in quick
    assert banner in report.claims_page(led.to_frame(), "smoke") and banner not in report.claims_page(
        led.to_frame(), "quick")
    assert "mmlab-scoreboard" in quick and "Where each method stands" in quick
    empty = report.render_intro(source, report.load_build(tmp_path / "none", "quick"), "quick", ROOT)
    assert "No claims ledger was found in this build" in empty and "mmlab-scoreboard" not in empty
    with pytest.raises(ValueError, match="markers"):
        report.render_intro("# intro", found, "quick", ROOT)


def test_build_stages_the_css_and_writes_both_pages(tmp_path):
    build = tmp_path / "_build"
    src = book.stage(build)
    assert (src / "_static" / "mmlab.css").read_text() == (ROOT / "book" / "_static" / "mmlab.css").read_text()
    assert not (src / "book" / "_static").exists()
    ledger(profile="smoke").save(build / "claims")
    Ledger("41-other", "quick").save(build / "claims")                    # another profile: left out
    book.write_claims_page(build, src, "smoke")
    book.write_intro_page(build, src, "smoke")
    claims_md, intro = (src / "book" / "claims.md").read_text(), (src / "book" / "intro.md").read_text()
    assert "(1 ledger(s) recorded under another profile are left out.)" in claims_md
    assert "Smoke build" in claims_md and "Smoke build" in intro and "<!-- mmlab:" not in intro
    ids = {e["attrs"]["id"] for e in Elements(claims_md).elements if "id" in e["attrs"]}
    links = {a["attrs"]["href"].split("#", 1)[1] for a in Elements(intro).find("a")
             if a["attrs"].get("href", "").startswith("claims.html#")}
    assert links and links <= ids
    assert (ROOT / "book" / "intro.md").read_text().count("<!-- mmlab:scoreboard -->") == 1   # source untouched
