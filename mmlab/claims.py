"""The claims ledger: paper claims as executable checks over multi-seed results.

Each notebook states the claims it tests as :class:`Claim` objects built from per-seed paired
differences; the verdict is computed by ONE rule (:data:`RULE`, applied by :func:`verdict`),
never passed in. A notebook keeps a :class:`Ledger`, saves it next to its results, and the
book's claims page reads every ledger with :meth:`Ledger.load_all`.

>>> led = Ledger("01-avmnist")
>>> d = paired_diffs(df, {"method": "unimodal", "modality": "image"},
...                  {"method": "concat", "modality": "image"}, value="probe")   # doctest: +SKIP
>>> led.check("01-avmnist-weak-encoder", "ReconBoost", "Table 5 / Sec. 4.3",
...           "The weak modality's encoder trained jointly is worse than trained alone (linear probe)",
...           dataset="AV-MNIST", measure="probe(unimodal) - probe(concat), image", diffs=d)  # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mmlab.utils import atomic_write_json

__all__ = ["RULE", "VERDICTS", "ALPHA", "MIN_SEEDS", "DEFAULT_MIN_EFFECT", "UNITS", "Claim", "check", "verdict",
           "format_effect", "paired_diffs", "Ledger", "verdict_counts", "COLUMNS", "by_protocol",
           "protocol_changes", "STANDING_KEYS", "standing_row"]

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
ALPHA = 0.05
MIN_SEEDS = 3
DEFAULT_MIN_EFFECT = 0.01
# How a claim's differences are shown: "points" (differences of accuracies / mAP stored as
# fractions, shown x100 with one decimal: "+4.2 ± 1.1 pts") or "ratio" (shown raw, two decimals).
UNITS = ("points", "ratio")

RULE = (
    "Each claim is tested on per-seed paired differences d_1..d_n, signed so that a positive d is the "
    "effect the paper claims (e.g. d = accuracy(method) - accuracy(baseline) on the same seed), against a "
    "minimum effect size min_effect (default 0.01: one point for accuracies, 0.01 for ratios). "
    "(1) If n < 3 the verdict is 'inconclusive' (too few seeds). "
    "(2) Otherwise compute the mean and sample standard deviation of d and two one-sided one-sample t-tests "
    "(scipy.stats.ttest_1samp): p(mean>0) for H1: mean > 0, and p(mean<min) for H1: mean < min_effect. "
    "(3) 'reproduced' if mean >= min_effect and p(mean>0) < 0.05: the effect is at least min_effect on "
    "average and confidently positive. "
    "(4) 'not reproduced' if p(mean<min) < 0.05: the effect is confidently smaller than min_effect, which "
    "includes no effect and the reverse effect. "
    "(5) Otherwise 'inconclusive' (too noisy to tell). "
    "Zero variance (all d equal up to float rounding, so the t-test is undefined): 'reproduced' if the common "
    "value is >= min_effect and > 0, else 'not reproduced'; both p-values are then missing, shown as "
    "'— (zero variance)' (and as '— (n < 3)' with too few seeds). "
    "The p-value shown beside a verdict is the one that decided it: p(mean>0) for 'reproduced', p(mean<min) "
    "for 'not reproduced', both for 'inconclusive' (three decimals; '< 0.001' below that). "
    "Effects are shown as mean ± sd of d: differences of accuracies or mAP (stored as fractions) in points, "
    "x100 with one decimal ('+4.2 ± 1.1 pts'); ratios such as the degree of modality competition (DMC) "
    "raw with two decimals ('+0.12 ± 0.05'). "
    "The verdict is always computed from the differences, never entered by hand."
)


def verdict(diffs, min_effect: float = DEFAULT_MIN_EFFECT) -> dict:
    """Apply :data:`RULE`: returns n, mean, std, p_value (H1: mean > 0), p_below (H1: mean <
    min_effect) and verdict."""
    d = np.asarray([float(x) for x in diffs], dtype=float)
    if d.ndim != 1:
        raise ValueError("diffs must be a flat sequence of numbers")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"diffs must be finite numbers; got {d.tolist()}")
    min_effect = float(min_effect)
    if not (math.isfinite(min_effect) and min_effect >= 0):
        raise ValueError(f"min_effect must be a finite number >= 0; got {min_effect}")
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    std = float(d.std(ddof=1)) if n > 1 else math.nan
    out = {"n": n, "mean": mean, "std": std, "p_value": math.nan, "p_below": math.nan}
    if n < MIN_SEEDS:
        return {**out, "verdict": INCONCLUSIVE}
    if np.ptp(d) <= 1e-12 * max(1.0, abs(mean)):  # zero variance (up to float rounding): no t statistic
        std = 0.0
        ok = mean >= min_effect and mean > 0
        return {**out, "std": std, "verdict": REPRODUCED if ok else NOT_REPRODUCED}
    p_value = float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)
    p_below = float(stats.ttest_1samp(d, min_effect, alternative="less").pvalue)
    if mean >= min_effect and p_value < ALPHA:
        v = REPRODUCED
    elif p_below < ALPHA:
        v = NOT_REPRODUCED
    else:
        v = INCONCLUSIVE
    return {**out, "p_value": p_value, "p_below": p_below, "verdict": v}


@dataclass(frozen=True)
class Claim:
    """One paper claim tested on our results. The statistics and the verdict are computed from
    `diffs` and `min_effect` when the claim is created (they cannot be passed in)."""
    id: str
    paper: str
    source: str
    statement: str
    dataset: str
    measure: str
    diffs: list
    min_effect: float = DEFAULT_MIN_EFFECT
    notebook: str = ""
    reported: str = ""              # the paper's numbers behind the claim, for its dataset family
    protocol: str = ""              # which training protocol produced the diffs (e.g. equal budget, paper recipe)
    unit: str = "points"            # how the diffs are shown (UNITS): "points" (fractions x100) or "ratio" (raw)
    n: int = field(init=False)
    mean: float = field(init=False)
    std: float = field(init=False)
    p_value: float = field(init=False)
    p_below: float = field(init=False)
    verdict: str = field(init=False)

    def __post_init__(self):
        if not str(self.id).strip():
            raise ValueError("a claim needs a non-empty id")
        if self.unit not in UNITS:
            raise ValueError(f"claim {self.id!r}: unit must be one of {UNITS}; got {self.unit!r}")
        diffs = [float(x) for x in self.diffs]
        object.__setattr__(self, "diffs", diffs)
        object.__setattr__(self, "min_effect", float(self.min_effect))
        for k, v in verdict(diffs, self.min_effect).items():
            object.__setattr__(self, k, v)

    _INPUTS = ("id", "paper", "source", "statement", "dataset", "measure", "diffs", "min_effect", "notebook",
               "reported", "protocol", "unit")
    _OPTIONAL = ("min_effect", "notebook", "reported", "protocol", "unit")   # ledgers saved before `unit` still load

    def inputs(self) -> dict:
        """The fields a claim is built from (everything else is computed)."""
        return {k: getattr(self, k) for k in self._INPUTS}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Claim":
        """Rebuild from saved inputs; any saved statistics or verdict are ignored and recomputed."""
        missing = [k for k in cls._INPUTS if k not in d and k not in cls._OPTIONAL]
        if missing:
            raise ValueError(f"saved claim lacks {missing}: {d.get('id', d)!r}")
        return cls(**{k: d[k] for k in cls._INPUTS if k in d})

    @property
    def deciding_p(self) -> str:
        """The p-value that decided the verdict, labelled as RULE names it: p(mean>0) for
        reproduced, p(mean<min) for not reproduced, both for inconclusive; "—" when missing."""
        if self.n < MIN_SEEDS:
            return f"— (n < {MIN_SEEDS})"
        if math.isnan(self.p_value):
            return "— (zero variance)"
        above, below = f"p(mean>0) {_p_text(self.p_value)}", f"p(mean<min) {_p_text(self.p_below)}"
        return {REPRODUCED: above, NOT_REPRODUCED: below}.get(self.verdict, f"{above}, {below}")

    def effect(self, scale: float | None = None) -> str:
        """'mean ± std' of the differences; with scale (e.g. 100) in points of that unit (a
        claim in unit "ratio" is never scaled: two decimals)."""
        if self.n == 0:
            return "—"
        if scale is not None and self.unit == "ratio":
            return format_effect(self.mean, self.std, self.n, "ratio")
        if scale is None:
            return f"{self.mean:+.3g} ± {self.std:.2g}"
        return f"{self.mean * scale:+.1f} ± {self.std * scale:.1f}"

    @property
    def shown_effect(self) -> str:
        """The effect as the book shows it, in the claim's unit (:func:`format_effect`)."""
        return format_effect(self.mean, self.std, self.n, self.unit)


def _p_text(p: float) -> str:
    """'= 0.003' (three decimals), or '< 0.001' below that."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def format_effect(mean: float, std: float, n: int, unit: str = "points") -> str:
    """'mean ± sd' of a claim's differences in its unit: "points" -> '+4.2 ± 1.1 pts' (the
    fractions x100, one decimal), "ratio" -> '+0.12 ± 0.05'; no '± sd' for one seed, '—' for none."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}; got {unit!r}")
    if not n or mean is None or not math.isfinite(mean):
        return "—"
    scale, digits, suffix = (100.0, 1, " pts") if unit == "points" else (1.0, 2, "")
    text = f"{mean * scale:+.{digits}f}"
    if std is not None and math.isfinite(std) and n > 1:
        text += f" ± {std * scale:.{digits}f}"
    return text + suffix


def check(id: str, paper: str, source: str, statement: str, dataset: str, measure: str, diffs,
          min_effect: float = DEFAULT_MIN_EFFECT, notebook: str = "", reported: str = "",
          protocol: str = "", unit: str = "points") -> Claim:
    """Create a :class:`Claim`; its verdict follows :data:`RULE`. `unit` (:data:`UNITS`) says how
    its differences are shown: "points" for accuracies / mAP as fractions, "ratio" for e.g. DMC."""
    return Claim(id=id, paper=paper, source=source, statement=statement, dataset=dataset, measure=measure,
                 diffs=list(diffs), min_effect=min_effect, notebook=notebook, reported=reported,
                 protocol=protocol, unit=unit)


def _select(df: pd.DataFrame, sel: dict, name: str) -> pd.DataFrame:
    mask = pd.Series(True, index=df.index)
    for k, v in sel.items():
        if k not in df.columns:
            raise KeyError(f"selector {name} uses column {k!r}, not in the frame ({list(df.columns)})")
        mask &= df[k] == v
    out = df[mask]
    if out.empty:
        raise ValueError(f"selector {name}={sel!r} matches no rows")
    return out


def paired_diffs(df: pd.DataFrame, a: dict, b: dict, value: str, on: str = "seed") -> list[float]:
    """Per-seed differences value[a] - value[b] from a long per-seed frame, paired on `on`
    (sorted by it). Rows are selected by equality on every key of `a` / `b`. Raises if a selection
    is empty, holds a seed twice, or the two selections' seeds differ."""
    for col in (value, on):
        if col not in df.columns:
            raise KeyError(f"column {col!r} not in the frame ({list(df.columns)})")
    ra, rb = _select(df, a, "a"), _select(df, b, "b")
    for r, name, sel in ((ra, "a", a), (rb, "b", b)):
        dup = r[on][r[on].duplicated()].tolist()
        if dup:
            raise ValueError(f"selector {name}={sel!r} has several rows for {on} {sorted(set(dup))}; "
                             "narrow the selection")
    sa, sb = set(ra[on]), set(rb[on])
    if sa != sb:
        raise ValueError(f"{on}s differ between a and b: only in a {sorted(sa - sb)}, only in b {sorted(sb - sa)}")
    va, vb = ra.set_index(on)[value], rb.set_index(on)[value]
    return [float(va[s]) - float(vb[s]) for s in sorted(sa)]


COLUMNS = ["notebook", "id", "paper", "source", "statement", "dataset", "protocol", "reported", "measure", "unit",
           "n", "mean", "std", "p_value", "p_below", "deciding_p", "min_effect", "verdict", "diffs"]


def _frame(claims, scale: float | None = None) -> pd.DataFrame:
    rows = [{k: getattr(c, k) for k in COLUMNS} for c in claims]
    df = pd.DataFrame(rows, columns=COLUMNS)
    if scale is not None:
        df.insert(df.columns.get_loc("n"), "mean ± std", [c.effect(scale) for c in claims])
    return df


class Ledger:
    """The claims one notebook tests. Adding a claim whose id is already present replaces it
    (re-running a notebook cell does not duplicate claims)."""

    def __init__(self, notebook: str, profile: str = ""):
        notebook = str(notebook).strip()
        if not notebook or any(ch in notebook for ch in "/\\") or notebook.startswith("."):
            raise ValueError(f"notebook name {notebook!r} must be a plain non-empty file stem")
        self.notebook, self.profile = notebook, str(profile)
        self._claims: dict[str, Claim] = {}
        self.untested: dict[str, dict] = {}     # claims the paper does not make for a stand-in's family
        self._standings: dict[tuple, dict] = {}  # where each method stands (add_standings), by STANDING_KEY

    @property
    def claims(self) -> list[Claim]:
        return list(self._claims.values())

    def __len__(self):
        return len(self._claims)

    def __iter__(self):
        return iter(self.claims)

    def add(self, claim: Claim) -> Claim:
        if not isinstance(claim, Claim):
            raise TypeError(f"expected a Claim, got {type(claim).__name__}")
        if claim.notebook != self.notebook:
            claim = dataclasses.replace(claim, notebook=self.notebook)  # recomputes, same verdict
        self._claims[claim.id] = claim
        return claim

    def check(self, id: str, paper: str, source: str, statement: str, dataset: str, measure: str, diffs,
              min_effect: float = DEFAULT_MIN_EFFECT, reported: str = "", protocol: str = "",
              unit: str = "points") -> Claim:
        """Create a claim (verdict by :data:`RULE`), store it in this ledger, and return it."""
        return self.add(check(id, paper, source, statement, dataset, measure, diffs, min_effect, self.notebook,
                              reported, protocol, unit))

    def check_supported(self, support, id: str, paper: str, source: str, statement: str, dataset: str,
                        measure: str, diffs, min_effect: float = DEFAULT_MIN_EFFECT, protocol: str = "",
                        unit: str = "points"):
        """Test a claim only where the paper's own numbers show it for the dataset family the
        stand-in represents: `support` = (holds, citation), e.g. mmlab.papers.comparison(...).
        Otherwise the claim is listed in `untested` with the citation (and no verdict)."""
        holds, citation = support
        if holds:
            self.untested.pop(id, None)
            return self.check(id, paper, source, statement, dataset, measure, diffs, min_effect, citation, protocol,
                              unit)
        self._claims.pop(id, None)
        self.untested[id] = {"statement": statement, "dataset": dataset, "protocol": protocol,
                             "reported (does not show it on every dataset of the family)": citation}
        return None

    def untested_frame(self) -> pd.DataFrame:
        """The claims left untested because the paper does not make them for the family."""
        return pd.DataFrame.from_dict(self.untested, orient="index")

    @property
    def standings(self) -> list[dict]:
        """The standings rows added so far (:meth:`add_standings`), in the order first added."""
        return list(self._standings.values())

    def add_standings(self, rows) -> list[dict]:
        """Record where methods stand, for the book's scoreboard: `rows` is a DataFrame or an
        iterable of dicts with the keys of :data:`STANDING_KEYS` (mean / std as fractions for
        accuracies) and optionally "better" ("higher" or "lower") and "unit" ("percent" or
        "ratio"); see :func:`standing_row`. A row for the same (method, dataset, protocol,
        metric) replaces the earlier one. Returns the normalised rows."""
        if isinstance(rows, pd.DataFrame):
            rows = rows.to_dict("records")
        out = [standing_row(r) for r in rows]
        for r in out:
            self._standings[tuple(r[k] for k in STANDING_KEY)] = r
        return out

    def standings_frame(self) -> pd.DataFrame:
        """The standings as a frame, one row per (method, dataset, protocol, metric), with `notebook`."""
        cols = ["notebook", *STANDING_KEYS, *STANDING_OPTIONAL]
        return pd.DataFrame([{"notebook": self.notebook, **r} for r in self.standings], columns=cols)

    def to_frame(self, scale: float | None = None) -> pd.DataFrame:
        """One row per claim. With `scale` (e.g. 100 for accuracies stored as fractions) adds a
        'mean ± std' column in points."""
        return _frame(self.claims, scale)

    def save(self, directory) -> Path:
        """Write <directory>/<notebook>.json atomically (temp file + rename)."""
        path = Path(directory) / f"{self.notebook}.json"
        atomic_write_json({"notebook": self.notebook, "profile": self.profile, "rule": RULE,
                           "claims": [c.to_dict() for c in self.claims], "untested": self.untested,
                           "standings": self.standings}, path)
        return path

    @classmethod
    def load(cls, path) -> "Ledger":
        """Read one saved ledger; statistics and verdicts are recomputed from the saved diffs."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            led = cls(doc["notebook"], doc.get("profile", ""))
            for d in doc["claims"]:
                led.add(Claim.from_dict(d))
            led.untested = dict(doc.get("untested", {}))
            led.add_standings(doc.get("standings", []))      # absent from ledgers saved before standings
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: not a claims ledger ({e})") from e
        return led

    @staticmethod
    def load_all(directory, scale: float | None = None, profile: str | None = None) -> pd.DataFrame:
        """All notebooks' claims in `directory` (*.json ledgers), sorted by notebook then id.
        With `profile`, only ledgers recorded under that profile (a page never mixes
        profiles); without it, ledgers of several profiles raise. An empty or missing
        directory gives an empty frame with the same columns."""
        d = Path(directory)
        ledgers = [Ledger.load(p) for p in sorted(d.glob("*.json")) if not p.name.startswith(".")] \
            if d.is_dir() else []        # dot files: temp files of an in-progress atomic write
        if profile is not None:
            ledgers = [led for led in ledgers if led.profile == profile]
        profiles = sorted({led.profile for led in ledgers})
        if len(profiles) > 1:
            raise ValueError(f"{d}: ledgers of several profiles {profiles}; pass profile= to pick one")
        claims = sorted((c for led in ledgers for c in led.claims), key=lambda c: (c.notebook, c.id))
        return _frame(claims, scale)

    @staticmethod
    def verdict_counts(df: pd.DataFrame, by: str | None = None):
        """Same as the module-level :func:`verdict_counts`."""
        return verdict_counts(df, by)


STANDING_KEYS = ("method", "dataset", "protocol", "metric", "mean", "std", "n", "source")
STANDING_OPTIONAL = ("better", "unit")      # "higher" | "lower" (default higher); "percent" | "ratio" (default percent)
STANDING_KEY = ("method", "dataset", "protocol", "metric")


def _number(row: dict, key: str, missing_ok: bool = False):
    """row[key] as a finite float (None for a missing std of one seed when missing_ok)."""
    v = row[key]
    if missing_ok and (v is None or (isinstance(v, float) and math.isnan(v))):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"standings row {row!r}: {key} must be a number") from None
    if not math.isfinite(v) or (key == "std" and v < 0):
        raise ValueError(f"standings row {row!r}: {key} must be finite{' and >= 0' if key == 'std' else ''}")
    return v


def standing_row(row: dict) -> dict:
    """Check and normalise one standings row: the keys of STANDING_KEYS (strings for method,
    dataset, protocol, metric, source; finite mean; std >= 0 or None; integer n >= 1) plus
    `better` ("higher"/"lower") and `unit` ("percent": fractions shown x100; "ratio": raw)."""
    row = dict(row)
    missing = [k for k in STANDING_KEYS if k not in row]
    unknown = sorted(set(row) - set(STANDING_KEYS) - set(STANDING_OPTIONAL) - {"notebook"})
    if missing or unknown:
        raise ValueError(f"standings row {row!r}: missing keys {missing}, unknown keys {unknown}")
    out = {k: str(row[k]) for k in ("method", "dataset", "protocol", "metric", "source")}
    out["mean"], out["std"] = _number(row, "mean"), _number(row, "std", missing_ok=True)
    n = _number(row, "n")
    if n < 1 or not float(n).is_integer():
        raise ValueError(f"standings row {row!r}: n must be an integer >= 1")
    out["n"] = int(n)
    out["better"], out["unit"] = str(row.get("better", "higher")), str(row.get("unit", "percent"))
    if out["better"] not in ("higher", "lower") or out["unit"] not in ("percent", "ratio"):
        raise ValueError(f"standings row {row!r}: better must be higher|lower and unit percent|ratio")
    return out


def by_protocol(df: pd.DataFrame) -> pd.DataFrame:
    """Verdicts side by side per protocol: claims whose ids are '<base>@<protocol>' (one per
    protocol), one row per base claim and dataset, a column per protocol and `changes`
    (True where the protocols disagree)."""
    if len(df) == 0:
        return pd.DataFrame()
    d = df.assign(base=df["id"].str.rsplit("@", n=1).str[0])
    t = d.pivot_table(index=["base", "dataset", "statement"], columns="protocol", values="verdict",
                      aggfunc="first", sort=False)
    t["changes"] = t.nunique(axis=1) > 1
    return t


def protocol_changes(df: pd.DataFrame) -> str:
    """One sentence per claim whose verdict depends on the protocol (Markdown), from by_protocol."""
    t = by_protocol(df)
    if len(t) == 0 or not t["changes"].any():
        return "No verdict changes between the protocols."
    protos = [c for c in t.columns if c != "changes"]
    lines = []
    for (base, dataset, statement), r in t[t["changes"]].iterrows():
        lines.append(f"- *{statement}* ({dataset}): " + ", ".join(f"{p}: **{r[p]}**" for p in protos))
    return f"{int(t['changes'].sum())} of {len(t)} verdicts change with the protocol:\n" + "\n".join(lines)


def verdict_counts(df: pd.DataFrame, by: str | None = None):
    """Number of claims per verdict (all three verdicts always present). With `by` (e.g. "paper"
    or "notebook") a table with one row per group and one column per verdict."""
    if "verdict" not in df.columns:
        raise KeyError("frame has no 'verdict' column (use Ledger.to_frame() or Ledger.load_all())")
    if by is None:
        return df["verdict"].value_counts().reindex(list(VERDICTS), fill_value=0).rename("claims").astype(int)
    table = pd.crosstab(df[by], df["verdict"]) if len(df) else pd.DataFrame(index=pd.Index([], name=by))
    return table.reindex(columns=list(VERDICTS), fill_value=0).astype(int)
