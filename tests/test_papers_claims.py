"""mmlab.papers (reported numbers as data) and mmlab.claims (the claims ledger)."""
import functools
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mmlab import claims, papers
from mmlab.claims import RULE, Claim, Ledger, check, paired_diffs, verdict_counts

TABLES = sorted(papers.TABLES_DIR.glob("*.yaml"))
PAPERS_TEXT = Path(__file__).resolve().parents[2] / "shared" / "papers"


# ----------------------------------------------------------------------------- transcribed tables
def test_tables_are_listed_and_packaged():
    ids = papers.list_tables()
    assert ids == sorted(ids, key=papers._sort_key) and len(ids) == len(TABLES) >= 20
    assert {p.stem for p in TABLES} == set(ids)
    for must in ("reconboost-table1", "reconboost-table5", "reconboost-table11", "reconboost-table12",
                 "reconboost-table15", "erl-mr-table2", "erl-mr-table3", "erl-mr-table5", "mla-table1",
                 "mla-table2", "mie-table1", "mie-table4", "mie-table5"):
        assert must in ids
    assert papers.list_tables("mie") == [i for i in ids if i.startswith("mie-")]
    toml = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'mmlab = ["papers/tables/*.yaml"]' in toml


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.stem)
def test_every_table_has_the_schema(path):
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    for k in ("paper", "table", "source", "caption", "metric", "entries"):
        assert doc.get(k) not in (None, ""), (path.name, k)
    assert set(doc) <= {"paper", "table", "source", "caption", "metric", "entries", "notes"}
    assert doc["paper"] in papers.PAPERS and path.stem == f"{doc['paper']}-table{doc['table'].split()[-1]}"
    assert re.fullmatch(r"Table \d+", doc["table"])
    assert doc["table"] in doc["source"]
    seen = set()
    for e in doc["entries"]:
        assert set(e) == {"method", "dataset", "column", "value"}, e
        assert all(isinstance(e[k], str) and e[k] for k in ("method", "dataset", "column")), e
        assert isinstance(e["value"], (int, float)) and not isinstance(e["value"], bool), e
        assert math.isfinite(e["value"])
        key = (e["method"], e["dataset"], e["column"])
        assert key not in seen, f"duplicate {key} in {path.name}"
        seen.add(key)
    df = papers.load_table(path.stem)
    assert list(df.columns) == papers.FIELDS and len(df) == len(doc["entries"]) > 0
    assert df["value"].dtype == float


@pytest.mark.parametrize("table_id, method, dataset, column, value", [
    ("reconboost-table11", "Concat Fusion", "CREMA-D", "Visual", 26.81),
    ("reconboost-table11", "Uni-train", "AVE", "MIR", 1.95),
    ("reconboost-table11", "UMT", "AVE", "Visual", 31.07),
    ("reconboost-table5", "UMT", "AVE", "Visual", 31.25),
    ("reconboost-table5", "Ours", "CREMA-D", "Visual", 73.01),
    ("reconboost-table1", "Ours", "CREMA-D", "Acc", 79.82),
    ("reconboost-table1", "VisualNet", "ModelNet40", "Acc", 80.51),
    ("reconboost-table12", "Ours", "CREMA-D", "Relative Improvement (%)", 34.15),
    ("reconboost-table12", "Concat Fusion", "MOSI", "DMC", 0.99),
    ("reconboost-table15", "UMT", "CREMA-D", "FC+Relu+FC Visual", 46.73),
    ("erl-mr-table2", "Uni-Modal 1", "CG-MNIST", "Acc", 99.3),
    ("erl-mr-table2", "Uni-Modal 2", "CG-MNIST", "Acc", 60.4),
    ("erl-mr-table2", "Concatenation", "CG-MNIST", "Acc", 58.4),
    ("erl-mr-table3", "PMR (Film)", "MHAD", "Accelerometer", 46.5),
    ("erl-mr-table5", "Gated", "USC", "E+C1+C2", 67.1),
    ("mla-table1", "MLA", "CREMA-D", "Video", 64.91),
    ("mla-table1", "QMF", "Food-101", "Multi", 92.87),
    ("mla-table2", "TATE", "IEMOCAP", "missing 70%", 54.35),
    ("mla-table6", "TATE", "IEMOCAP", "missing 10% (std)", 1.02),
    ("mla-table3", "HGM off, DF on", "MVSA", "Multi", 77.53),
    ("mie-table1", "MIE (Weight)", "Kinetics-Sounds", "MAP", 78.55),
    ("mie-table4", "30%", "Kinetics-Sounds", "Accuracy", 72.56),
    ("mie-table5", "MIE (w/o SAM)", "Kinetics-Sounds", "FC(Dim x 256) Max", 16926.6),
])
def test_spot_checks_against_the_papers(table_id, method, dataset, column, value):
    assert papers.reported(table_id, method, dataset, column) == value


def _printed_values(path: Path):
    """The value tokens exactly as written in the YAML (e.g. '79.70', which a float would shorten)."""
    return re.findall(r"\bvalue: (-?[0-9][0-9.]*)\s*\}", path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=None)
def _numbers_in(paper: str) -> frozenset:
    """Every whole number printed in a paper's text ('79.70' in '79.70%', not '9.70' nor '79.7')."""
    text = (PAPERS_TEXT / f"{paper}.txt").read_text(encoding="utf-8")
    return frozenset(re.findall(r"(?<![\d.])\d+(?:\.\d+)?", text))


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.stem)
def test_every_value_is_printed_in_its_paper(path):
    if not PAPERS_TEXT.is_dir():
        pytest.skip(f"paper texts not available at {PAPERS_TEXT}")
    paper = yaml.safe_load(path.read_text(encoding="utf-8"))["paper"]
    tokens = _printed_values(path)
    assert len(tokens) == len(papers.load_table(path.stem))
    missing = [t for t in tokens if t not in _numbers_in(paper)]
    assert not missing, f"{path.name}: values not found in {paper}.txt: {missing}"


def test_reported_lookup_and_aliases():
    assert papers.reported("erl-mr-table2", "Uni-Modal 1", "CGM", "Acc") == 99.3  # paper's abbreviation
    assert papers.reported("reconboost-table1", "ours", "mn40", "acc") == 91.78
    assert papers.reported("mie-table4", "30%", column="MAP") == 77.52  # single-dataset table
    rows = papers.reported("reconboost-table11", method="Concat Fusion")
    assert isinstance(rows, pd.DataFrame) and len(rows) == 8
    with pytest.raises(KeyError, match="choices: 'Uni-train'"):
        papers.reported("reconboost-table11", "Nope", "CREMA-D", "Visual")
    info = papers.table_info("erl-mr-table2")
    assert "Uni-Modal 1" in info["notes"] and info["table"] == "Table 2"


def test_unknown_table_id_lists_the_ids():
    with pytest.raises(KeyError) as e:
        papers.load_table("reconboost-table99")
    msg = str(e.value)
    assert msg.startswith("unknown paper table") and "reconboost-table11" in msg and "mla-table2" in msg


def _ours():
    rows = [("concat", "image", s, v) for s, v in enumerate([0.574, 0.586, 0.592])]
    rows += [("concat", "audio", s, v) for s, v in enumerate([0.60, 0.61, 0.62])]
    return pd.DataFrame(rows, columns=["method", "column", "seed", "value"])


def test_paper_vs_ours_formats_and_labels_both_datasets():
    out = papers.paper_vs_ours(_ours(), "erl-mr-table2", {("Concatenation", "Acc", "CG-MNIST"): ("concat", "image")},
                               our_dataset="CG-MNIST (ours)")
    assert list(out.columns[:4]) == ["method", "column", "paper: CG-MNIST (reported)",
                                     "ours: CG-MNIST (ours) (mean ± std, 3 seeds)"]
    r = out.iloc[0]
    assert r["paper: CG-MNIST (reported)"] == "58.4" and r["paper_value"] == 58.4
    assert r["ours: CG-MNIST (ours) (mean ± std, 3 seeds)"] == "58.4 ± 0.9"
    assert r["n"] == 3 and r["ours_mean"] == pytest.approx(58.4) and r["ours_std"] == pytest.approx(0.916515, 1e-5)

    mapping = {("Concat Fusion", "Visual", "CREMA-D"): ("concat", "image"),
               ("Concat Fusion", "Audio", "AVE"): ("concat", "audio")}
    out = papers.paper_vs_ours(_ours(), "reconboost-table5", mapping, our_dataset="AV-MNIST")
    assert "paper: CREMA-D (reported)" in out.columns and "paper: AVE (reported)" in out.columns
    assert "ours: AV-MNIST (mean ± std, 3 seeds)" in out.columns
    assert out["paper: CREMA-D (reported)"].tolist() == ["26.81", ""]
    assert out["paper_dataset"].tolist() == ["CREMA-D", "AVE"]
    assert out["ours: AV-MNIST (mean ± std, 3 seeds)"].tolist()[1] == "61.0 ± 1.0"
    # trailing zeros as printed (YAML float 79.7 -> "79.70")
    out = papers.paper_vs_ours(_ours(), "mla-table1", {("MLA", "Multi", "CREMA-D"): ("concat", "audio")}, "X", scale=100)
    assert out["paper: CREMA-D (reported)"].iloc[0] == "79.70"


def test_paper_vs_ours_requires_a_dataset_when_the_table_has_several():
    with pytest.raises(ValueError, match=r"several datasets \(CREMA-D, AVE\).*3|name the paper dataset"):
        papers.paper_vs_ours(_ours(), "reconboost-table5", {("Concat Fusion", "Visual"): ("concat", "image")}, "AV-MNIST")
    with pytest.raises(KeyError, match="no rows in `ours`"):
        papers.paper_vs_ours(_ours(), "mie-table4", {("30%", "Accuracy"): ("mie", "multi")}, "AV-MNIST")
    with pytest.raises(ValueError, match="needs columns"):
        papers.paper_vs_ours(_ours().drop(columns="seed"), "mie-table4", {("30%", "Accuracy"): ("concat", "image")}, "X")


# ----------------------------------------------------------------------------- claims ledger
def _c(diffs, **kw):
    return check("t", "ReconBoost", "Table 5", "statement", "AV-MNIST", "a - b", diffs, **kw)


def test_rule_is_stated_and_verdicts_follow_it():
    assert "min_effect" in RULE and "0.05" in RULE and "n < 3" in RULE and "Zero variance" in RULE
    assert _c([0.05, 0.06, 0.055]).verdict == "reproduced"
    rev = _c([-0.05, -0.06, -0.04])
    assert rev.verdict == "not reproduced" and rev.p_below < 0.05
    tiny = _c([0.0005, 0.001, 0.0015])  # 0.001 ± 0.0005: confidently below one point
    assert tiny.verdict == "not reproduced" and tiny.mean == pytest.approx(0.001) and tiny.std == pytest.approx(0.0005)
    noisy = _c([0.10, -0.08, 0.03])
    assert noisy.verdict == "inconclusive"
    two = _c([0.2, 0.3])
    assert two.verdict == "inconclusive" and two.n == 2 and math.isnan(two.p_value)
    # positive and significant but below min_effect, not confidently below it: inconclusive
    assert _c([0.004, 0.012, 0.02]).verdict == "inconclusive"
    # large mean but not significant
    assert _c([0.3, -0.1, 0.05]).verdict == "inconclusive"
    # a custom minimum effect
    assert _c([0.05, 0.06, 0.055], min_effect=0.1).verdict == "not reproduced"


def test_zero_variance():
    c = _c([0.02, 0.02, 0.02])
    assert c.verdict == "reproduced" and c.std == 0 and math.isnan(c.p_value)
    assert _c([0.005] * 3).verdict == "not reproduced"
    assert _c([0.0] * 4).verdict == "not reproduced"
    assert _c([-0.03] * 3).verdict == "not reproduced"
    assert _c([0.01] * 3).verdict == "reproduced"  # equal to min_effect counts
    assert _c([0.1 + 0.2, 0.3, 0.3]).verdict == "reproduced"  # float rounding is still zero variance
    assert _c([0.0] * 3, min_effect=0.0).verdict == "not reproduced"  # no effect is never reproduced


def test_verdicts_cannot_be_passed_in():
    with pytest.raises(TypeError):
        Claim(id="x", paper="p", source="s", statement="s", dataset="d", measure="m", diffs=[1, 1, 1],
              verdict="reproduced")
    c = _c([0.05, 0.06, 0.055])
    with pytest.raises(Exception):
        c.verdict = "not reproduced"
    with pytest.raises(TypeError):
        Ledger("nb").check("x", "p", "s", "st", "d", "m", [0.1] * 3, verdict="reproduced")
    with pytest.raises(ValueError, match="finite"):
        _c([0.1, float("nan"), 0.2])


def test_paired_diffs():
    df = pd.DataFrame({"method": ["uni"] * 3 + ["concat"] * 3 + ["concat"],
                       "modality": ["image"] * 6 + ["audio"],
                       "seed": [2, 0, 1, 0, 1, 2, 0], "acc": [0.5, 0.4, 0.45, 0.3, 0.35, 0.3, 0.9]})
    d = paired_diffs(df, {"method": "uni", "modality": "image"}, {"method": "concat", "modality": "image"}, "acc")
    assert d == pytest.approx([0.1, 0.1, 0.2])  # sorted by seed 0, 1, 2
    with pytest.raises(ValueError, match="seeds differ"):
        paired_diffs(df, {"method": "uni"}, {"method": "concat", "modality": "audio"}, "acc")
    with pytest.raises(ValueError, match="several rows"):
        paired_diffs(df, {"method": "uni"}, {"method": "concat"}, "acc")
    with pytest.raises(ValueError, match="matches no rows"):
        paired_diffs(df, {"method": "nope"}, {"method": "concat"}, "acc")


def test_ledger_roundtrip_is_atomic(tmp_path):
    led = Ledger("01-avmnist")
    c = led.check("01-avmnist-weak-encoder", "ReconBoost", "Table 5 / Sec. 4.3",
                  "The weak modality's encoder trained jointly is worse than trained alone (linear probe)",
                  "AV-MNIST", "probe(unimodal) - probe(concat), image", [0.05, 0.06, 0.055])
    assert c.notebook == "01-avmnist" and c.verdict == "reproduced"
    led.add(_c([0.1, 0.1]))  # notebook is set by the ledger
    led.check("01-avmnist-weak-encoder", "ReconBoost", "Table 5", "re-run replaces", "AV-MNIST", "m",
              [0.05, 0.06, 0.055])
    assert len(led) == 2 and all(x.notebook == "01-avmnist" for x in led)
    frame = led.to_frame(scale=100)
    assert frame.loc[frame["id"] == "01-avmnist-weak-encoder", "mean ± std"].iloc[0] == "+5.5 ± 0.5"
    path = led.save(tmp_path)
    assert path == tmp_path / "01-avmnist.json"
    assert [p.name for p in tmp_path.iterdir()] == ["01-avmnist.json"]  # no temp files left behind
    doc = json.loads(path.read_text())
    assert doc["rule"] == RULE and len(doc["claims"]) == 2

    Ledger("00-intro").save(tmp_path)  # a notebook with no claims yet
    led2 = Ledger("02-cgmnist")
    led2.check("02-b", "ERL-MR", "Table 2", "s", "CG-MNIST", "m", [-0.05, -0.04, -0.06])
    led2.check("02-a", "ERL-MR", "Table 2", "s", "CG-MNIST", "m", [0.1, -0.2, 0.3])
    led2.save(tmp_path)
    df = Ledger.load_all(tmp_path)
    assert list(df.columns) == claims.COLUMNS
    assert list(zip(df["notebook"], df["id"])) == [("01-avmnist", "01-avmnist-weak-encoder"), ("01-avmnist", "t"),
                                                   ("02-cgmnist", "02-a"), ("02-cgmnist", "02-b")]
    assert df["verdict"].tolist() == ["reproduced", "inconclusive", "inconclusive", "not reproduced"]
    counts = verdict_counts(df)
    assert counts.to_dict() == {"reproduced": 1, "not reproduced": 1, "inconclusive": 2}
    by = Ledger.verdict_counts(df, by="notebook")
    assert by.loc["02-cgmnist"].tolist() == [0, 1, 1]


def test_saved_verdicts_are_recomputed_not_trusted(tmp_path):
    led = Ledger("nb")
    led.check("c", "MLA", "Table 1", "s", "d", "m", [-0.05, -0.06, -0.04])
    path = led.save(tmp_path)
    doc = json.loads(path.read_text())
    doc["claims"][0]["verdict"] = "reproduced"  # a hand edit
    path.write_text(json.dumps(doc))
    assert Ledger.load_all(tmp_path)["verdict"].tolist() == ["not reproduced"]


def test_load_all_on_empty_or_missing_dir(tmp_path):
    for d in (tmp_path, tmp_path / "missing"):
        df = Ledger.load_all(d)
        assert df.empty and list(df.columns) == claims.COLUMNS
        assert verdict_counts(df).to_dict() == {"reproduced": 0, "not reproduced": 0, "inconclusive": 0}
        assert verdict_counts(df, by="paper").empty


def test_ledger_rejects_bad_names_and_files(tmp_path):
    for bad in ("", "a/b", ".hidden"):
        with pytest.raises(ValueError):
            Ledger(bad)
    (tmp_path / "broken.json").write_text('{"notebook": "broken"}')
    with pytest.raises(ValueError, match="not a claims ledger"):
        Ledger.load_all(tmp_path)


# --------------------------------------------------------- claims the paper makes for a family
def test_comparison_holds_only_where_every_family_dataset_shows_it():
    holds, cite = papers.comparison("reconboost-table1", "Ours", "G-Blending", "Acc", ("CREMA-D", "AVE", "Kinetics-Sounds"))
    assert holds and cite == "ReconBoost Table 1, Acc: Ours 79.82 vs G-Blending 63.81 (CREMA-D); 71.35 vs 62.75 (AVE)"
    # the three-modality sets: G-Blending ties concat on CH-SIMS (71.55 vs 71.55), OGM-GE is below on MOSEI
    holds, cite = papers.comparison("reconboost-table2", "G-Blending", "Concat Fusion", "Acc", ("MOSEI", "MOSI", "CH-SIMS"))
    assert not holds and "71.55 vs 71.55 (CH-SIMS)" in cite
    assert not papers.comparison("reconboost-table2", "OGM-GE", "Concat Fusion", "Acc", ("MOSEI", "MOSI", "CH-SIMS"))[0]
    assert papers.comparison("reconboost-table2", "Ours", "UMT", "Acc", ("MOSEI", "MOSI", "CH-SIMS"))[0]
    # a family the table does not report: no support
    holds, cite = papers.comparison("reconboost-table7", "Ours", "Concat Fusion", "MAP", ("MOSEI",))
    assert not holds and "no cell" in cite
    # several columns (noise levels) of one dataset
    holds, cite = papers.comparison("reconboost-table8", "Ours", "UMT", ["σ²=0.1", "σ²=1.0"], ("CREMA-D",))
    assert holds and "Ours 74.75 vs UMT 68.76 (CREMA-D, σ²=0.1); 63.95 vs 62.23" in cite


def test_threshold_and_figure_support():
    assert papers.threshold("reconboost-table12", "Concat Fusion", "DMC", ("CREMA-D", "AVE"), above=1.0) == \
        (True, "ReconBoost Table 12: Concat Fusion DMC 1.81 (CREMA-D), 1.19 (AVE)")
    holds, cite = papers.threshold("reconboost-table12", "Concat Fusion", "DMC", ("MOSEI", "MOSI", "CH-SIMS"), above=1.0)
    assert not holds and "0.99 (MOSI)" in cite                    # the paper's own MOSI is below 1
    assert papers.in_figure("reconboost", "Fig. 8", ("CREMA-D", "AVE"), ("CREMA-D", "AVE"))[0]
    assert not papers.in_figure("reconboost", "Fig. 8", ("CREMA-D", "AVE"), ("MOSEI", "MOSI"))[0]


def test_unsupported_claims_are_listed_not_tested(tmp_path):
    led = Ledger("40-x", profile="quick")
    led.check_supported((True, "T1: 79.82 vs 63.81"), "a@equal", "ReconBoost", "T1", "A beats B", "avmnist", "d",
                        [0.02, 0.03, 0.025], protocol="equal budget")
    led.check_supported((False, "T2: 66.93 vs 66.71; 71.55 vs 71.55"), "b@equal", "ReconBoost", "T2", "B beats C",
                        "mfeat", "d", [0.5, 0.5, 0.6], protocol="equal budget")
    assert [c.id for c in led] == ["a@equal"] and led.claims[0].reported == "T1: 79.82 vs 63.81"
    assert list(led.untested) == ["b@equal"] and "71.55" in led.untested_frame().iloc[0, -1]
    back = Ledger.load(led.save(tmp_path))
    assert back.profile == "quick" and back.untested == led.untested
    assert back.claims[0].protocol == "equal budget" and back.claims[0].reported == "T1: 79.82 vs 63.81"


def test_deciding_p_is_the_one_behind_the_verdict():
    rep = check("r", "P", "s", "st", "d", "m", [0.05, 0.06, 0.055])
    bad = check("n", "P", "s", "st", "d", "m", [-0.05, -0.06, -0.055])
    unsure = check("i", "P", "s", "st", "d", "m", [0.1, -0.2, 0.3])
    assert rep.deciding_p == f"p(mean>0) = {rep.p_value:.3f}" and bad.deciding_p == "p(mean<min) < 0.001"
    assert unsure.deciding_p == f"p(mean>0) = {unsure.p_value:.3f}, p(mean<min) = {unsure.p_below:.3f}"
    assert check("z", "P", "s", "st", "d", "m", [0.02] * 3).deciding_p == "— (zero variance)"
    assert check("f", "P", "s", "st", "d", "m", [0.02]).deciding_p == "— (n < 3)"


def test_ledgers_of_two_profiles_never_mix(tmp_path):
    Ledger("01-a", profile="smoke").save(tmp_path)
    led = Ledger("40-b", profile="quick")
    led.check("c", "P", "s", "st", "d", "m", [0.05, 0.06, 0.055])
    led.save(tmp_path)
    with pytest.raises(ValueError, match="several profiles"):
        Ledger.load_all(tmp_path)
    assert Ledger.load_all(tmp_path, profile="quick")["notebook"].tolist() == ["40-b"]
    assert Ledger.load_all(tmp_path, profile="smoke").empty


def test_verdicts_per_protocol_and_the_changes_between_them():
    led = Ledger("40-x")
    for p, d in (("equal budget", [0.05, 0.06, 0.055]), ("paper recipe", [-0.05, -0.06, -0.055])):
        led.check(f"rb-beats-x@{p[:5]}", "P", "s", "ReconBoost beats X", "avmnist", "m", d, protocol=p)
    for p in ("equal budget", "paper recipe"):
        led.check(f"same@{p[:5]}", "P", "s", "stable claim", "avmnist", "m", [0.05, 0.06, 0.055], protocol=p)
    t = claims.by_protocol(led.to_frame())
    assert t.loc[("rb-beats-x", "avmnist", "ReconBoost beats X"), "changes"]
    assert not t.loc[("same", "avmnist", "stable claim"), "changes"]
    text = claims.protocol_changes(led.to_frame())
    assert text.startswith("1 of 2 verdicts change") and "equal budget: **reproduced**" in text
    assert "stable claim" not in text


def test_claims_page_shows_the_citation_the_protocol_and_the_deciding_p(tmp_path):
    from mmlab import book
    led = Ledger("40-x", profile="quick")
    led.check("a@equal", "ReconBoost", "T1", "A beats B", "avmnist", "d", [0.05, 0.06, 0.055],
              reported="ReconBoost Table 1, Acc: Ours 79.82 vs G-Blending 63.81 (CREMA-D)", protocol="equal budget")
    page = book.render_ledger_markdown(led.to_frame(), "quick")
    row = next(line for line in page.splitlines() if line.startswith("<tr>") and "A beats B" in line)
    assert "79.82 vs G-Blending 63.81" in row and "equal budget" in row and "p(mean&gt;0)&nbsp;= " in row
    assert 'mmlab-reproduced">reproduced</span>' in row and "profile **quick**" in page
