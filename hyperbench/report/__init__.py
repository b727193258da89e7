"""`hyperbench-report PATH...`: turn run and sweep directories into the seeds' tables.

Reads only files in run directories (metrics.json, .hydra/config.yaml, model.pt), so it works the
same for local, joblib and SLURM sweeps. Writes into <first PATH>/report/ (or --out): runs.csv, one CSV
and one markdown file per table, figures, report.md (which it also prints) and report.html, the same
page self-contained (figures embedded). Runs whose configs differ only in seed (and in settings that do
not change what is measured, report/common.NOT_CONFIG) are one configuration: mean ± std (n) over seeds.

Each task's tables live in their own module with a `section(ok_runs, out) -> list[markdown]`;
SECTIONS lists them in the order the report prints them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from ..files import write_text
from . import cifar, compensate, continual, invariance, mnist, seeds, transform
from .common import config_key
from .html import to_html

SECTIONS = [mnist.section, cifar.section, invariance.section, transform.section, compensate.section, continual.section,
            seeds.section]


def _run_dirs(root: Path) -> list[Path]:
    """Directories holding a run: a metrics.json, or a .hydra/ config (a job that died early)."""
    found = {p.parent for p in root.rglob("metrics.json")}
    found |= {p.parent.parent for p in root.rglob(".hydra/config.yaml")}
    return sorted(d for d in found if "report" not in d.relative_to(root).parts)


def load_runs(paths: list[Path]) -> pd.DataFrame:
    """One row per run: a few config keys, every scalar of metrics.json, and the whole config
    (column `config`) for sections that need more."""
    rows = []
    for root in paths:
        for d in _run_dirs(root):
            cfg_file = d / ".hydra" / "config.yaml"
            cfg = OmegaConf.load(cfg_file) if cfg_file.exists() else OmegaConf.create({})
            metrics = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {
                "status": "no_metrics", "error": "the job left no metrics.json (killed or crashed before writing)"}
            row = {
                "run_dir": str(d),
                "task": OmegaConf.select(cfg, "task.name"),
                "data": OmegaConf.select(cfg, "data.name"),
                "model": OmegaConf.select(cfg, "model.name"),  # resolves hyper${.z_dim}_${.d}
                "lr": OmegaConf.select(cfg, "trainer.lr"),
                "seed": OmegaConf.select(cfg, "seed"),
                "config_key": config_key(cfg),
                "rotation": OmegaConf.select(cfg, "rotation.name"),
                "config": cfg,
            }
            row.update({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
            rows.append(row)
    return pd.DataFrame(rows)


def build_report(paths: list[Path], out: Path) -> str:
    runs = load_runs(paths)
    if runs.empty:
        raise SystemExit(f"hyperbench-report: no runs (metrics.json or .hydra/config.yaml) under {', '.join(map(str, paths))}")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "runs.csv", runs.drop(columns="config").to_csv(index=False))
    ok = runs[runs.status == "ok"]
    superseded = runs[runs.status == "superseded"]  # interrupted, then continued by trainer.resume elsewhere
    sections = [f"# hyperbench report\n\nRuns read: {len(runs)} ({len(ok)} ok"
                + (f", {len(superseded)} superseded by their resumed run" if len(superseded) else "")
                + f") from {', '.join(map(str, paths))}"]
    if not ok.empty:
        for section in SECTIONS:
            sections += section(ok, out)
    failed = runs[~runs.status.isin(["ok", "superseded"])]
    if not failed.empty:
        lines = [f"- `{r.run_dir}` ({r.model}): **{r.status}**: {str(r.error).strip()}" for r in failed.itertuples()]
        sections.append(f"## Failed runs ({len(failed)})\n\n" + "\n".join(lines))
    text = "\n\n".join(sections) + "\n"
    write_text(out / "report.md", text)
    write_text(out / "report.html", to_html(text, out))
    return text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="hyperbench-report", description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path, help="run or sweep directories")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: <first path>/report)")
    args = ap.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.is_dir()]
    if missing:
        print(f"hyperbench-report: not a directory: {', '.join(missing)}", file=sys.stderr)
        raise SystemExit(2)
    print(build_report(args.paths, args.out or args.paths[0] / "report"), end="")


if __name__ == "__main__":
    main()
