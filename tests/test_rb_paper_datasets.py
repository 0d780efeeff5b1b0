"""ReconBoost's chapters on the paper's own datasets: the role mapping (a paper dataset answers for
its family's stand-in with its own modality names) and chapters 40 / 41 run with papermill on a
miniature CREMA-D (the layout of tests/test_data_cremad.py), compared with CREMA-D's rows only."""
from pathlib import Path

import numpy as np
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def make_cremad(root: Path, actors=range(1001, 1015)) -> Path:
    """A miniature CREMA-D in the on-disk layout: 14 actors x 6 emotions (3 actors test), 0.5 s tones, 3 frames."""
    from PIL import Image
    from scipy.io import wavfile
    from mmlab.data import cremad
    r = root / "CREMA-D"
    (r / "AudioWAV").mkdir(parents=True)
    rng = np.random.default_rng(0)
    clips = []
    for a in actors:
        for k, emo in enumerate(cremad.EMOTIONS):
            clip = f"{a}_DFA_{emo}_XX"
            t = np.arange(8000) / 16000
            x = 0.3 * np.sin(2 * np.pi * (500 + 250 * k) * t) + 0.01 * rng.standard_normal(len(t))
            wavfile.write(r / "AudioWAV" / f"{clip}.wav", 16000, (x * 32767).astype(np.int16))
            (r / "Image-01-FPS" / clip).mkdir(parents=True)
            for f in range(3):
                Image.fromarray(np.full((20, 24, 3), 40 * k + 10 * f, np.uint8)).save(
                    r / "Image-01-FPS" / clip / f"{f:06d}.jpg")
            clips.append((clip, emo))
    test = [c for c in clips if int(c[0][:4]) % 4 == 0]
    for name, rows in (("train.csv", [c for c in clips if c not in test]), ("test.csv", test)):
        (r / name).write_text("".join(f"{c},{e}\n" for c, e in rows))
    return r


def test_paper_datasets_play_their_stand_ins_role_with_their_own_modalities():
    from mmlab.configs.reconboost import (RB_PROTOCOLS, RB_TABLES, RB_VIEWS, main_studies, rb_columns,
                                          rb_modality, rb_role, RB_T14_COLUMNS)
    assert RB_VIEWS["cremad"] == RB_VIEWS["ave"] == {"AudioNet": "audio", "VisualNet": "visual"}
    assert RB_VIEWS["mosei"] == {"TextNet": "text", "AudioNet": "audio", "VisualNet": "visual"}
    assert RB_VIEWS["avmnist"] == {"AudioNet": "audio", "VisualNet": "image"}           # stand-ins unchanged
    assert RB_TABLES["cremad"] == RB_TABLES["ave"] == "reconboost-table1"
    assert RB_TABLES["mosi"] == RB_TABLES["sims"] == "reconboost-table2"
    assert list(RB_TABLES) == ["avmnist", "mfeat"] and "cremad" not in RB_TABLES      # default datasets
    assert rb_role("ave") == "avmnist" and rb_role("mfeat") == "mfeat"
    assert rb_modality("cremad", "image") == "visual" and rb_modality("avmnist", "image") == "image"
    assert rb_columns("ave", RB_T14_COLUMNS)["Visual Acc"] == "visual"
    with pytest.raises(KeyError):
        RB_VIEWS["food101"]
    with pytest.raises(ValueError, match="paper's datasets"):
        main_studies("smoke", ["food101"])
    # each paper dataset trains every method with its family's recipe, ReconBoost with its own schedule
    ave = RB_PROTOCOLS["paper"].recipe("ave", "reconboost").method_options
    assert ave == {"t1": 4, "t2": 4, "lr_decay": 0.5, "lr_decay_every": 40}
    assert RB_PROTOCOLS["paper"].recipe("cremad", "concat").method_options == {}
    assert RB_PROTOCOLS["paper"].recipe("mosei", "reconboost").method_options == {"t1": 1, "t2": 1}
    assert RB_PROTOCOLS["equal"].recipe("mosei", "pmr").optimizer == "adam"


def _run(nb: str, tmp_path: Path, data: Path) -> str:
    import nbformat
    import papermill as pm
    out = tmp_path / f"{nb}.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / f"{nb}.ipynb"), str(out), parameters=dict(
        profile="smoke", device="cpu", n_jobs=1, data_root=str(data), datasets=["cremad"], protocols=["equal"]),
        kernel_name="python3", progress_bar=False, cwd=str(tmp_path))
    return "".join(str(o.get("data", {}).get("text/html", "")) + str(o.get("data", {}).get("text/markdown", ""))
                   + str(o.get("text", "")) for c in nbformat.read(out, 4).cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


@pytest.mark.slow
def test_chapters_40_and_41_run_on_cremad_against_cremad_rows_only(tmp_path, monkeypatch):
    """Slow: 32 ResNet-18 runs (the audio branch reads OGM-GE's [1, 257, 188] spectrograms whatever
    the image_size), ~15-40 s each on one CPU thread; the equal protocol only, to halve it."""
    from mmlab import papers
    monkeypatch.setenv("MMLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MMLAB_FIGURES", str(tmp_path / "figures"))
    data = make_cremad(tmp_path / "data").parent
    t1 = papers.load_table("reconboost-table1")
    cremad_ours = t1[(t1.dataset == "CREMA-D") & (t1.method == "Ours")].value.iloc[0]
    ave_ours = t1[(t1.dataset == "AVE") & (t1.method == "Ours")].value.iloc[0]
    text = _run("40-reconboost-accuracy", tmp_path, data)
    assert "CREMA-D itself (your copy)" in text                          # the overview names what it runs
    assert "paper: CREMA-D (reported)" in text and "paper: AVE" not in text
    assert f"{cremad_ours:.2f}" in text and f"{ave_ours:.2f}" not in text
    assert "Table 14 (reported) vs ours (cremad)" in text                # the audio-visual fusion rules
    assert "(CREMA-D)" in text and "(AVE)" not in text                  # claims cite CREMA-D's cells only
    assert "Traceback" not in text
    text = _run("41-reconboost-encoders", tmp_path, data)
    assert "Table 5 (CREMA-D / AVE, reported) vs ours (cremad)" in text
    assert "paper: CREMA-D (reported)" in text and "paper: AVE" not in text and "(AVE)" not in text
