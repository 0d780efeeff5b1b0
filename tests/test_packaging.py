"""The pins in requirements*.txt and environment.yml agree; nothing pulls a CUDA torch."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def pins(path):
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, ver = line.partition("==")
            out[name.lower()] = ver
    return out


def test_environment_yml_matches_requirements():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_pins = {p.partition("==")[0].lower(): p.partition("==")[2] for p in pip if "==" in p}
    assert env_pins == pins(ROOT / "requirements.txt")
    nodeps = {p.partition("==")[0].lower(): p.partition("==")[2] for p in env["x-mmlab-no-deps"]}
    assert nodeps == pins(ROOT / "requirements-data.txt")


def test_every_requirement_is_pinned_and_torch_is_the_cpu_pin():
    req = pins(ROOT / "requirements.txt")
    assert all(re.fullmatch(r"[0-9][0-9a-z.+]*", v) for v in req.values()), req
    assert req["torch"] == "2.13.0"
    assert "torchvision" not in req and "timm" not in req
    assert req["jupyter-book"].startswith("1.")


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text() and "make book" in (ROOT / "README.md").read_text()
