"""`hyperbench-report PATH...`: turn run and sweep directories into the published tables, ours beside theirs.

Reads only files in run directories (metrics.json, .hydra/config.yaml, model.pt), so it works the
same for local, joblib and SLURM sweeps. Writes into <first PATH>/report/ (or --out): runs.csv, one CSV
and one markdown file per table, figures, report.md (which it also prints) and report.html, the same
page self-contained (figures embedded). Runs whose configs differ only in seed (and in settings that do
not change what is measured, config.NOT_MEASURED) are one configuration: mean ± std (n) over seeds.

Each task's tables live in their own module with a `section(ok_runs, out) -> list[markdown]`;
SECTIONS lists them in the order the report prints them. Published columns cite their source by a short key
(published.REFERENCES); the report ends with those references.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from ..errors import HyperbenchError
from ..files import write_text
from .published import references_markdown
from . import cifar, compensate, continual, invariance, mnist, seeds, transform, verdicts
from .common import config_key, run_model_label, run_precision
from .html import to_html

SECTIONS = [verdicts.section, mnist.section, cifar.section, invariance.section, transform.section, compensate.section,
            continual.section, seeds.section]


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
                "model": run_model_label(cfg),  # resolves hyper${.z_dim}_${.d}; a hypernetized model as its row
                "lr": OmegaConf.select(cfg, "trainer.lr"),
                "seed": OmegaConf.select(cfg, "seed"),
                "config_key": config_key(cfg, run_precision(cfg, metrics)),
                "rotation": OmegaConf.select(cfg, "rotation.name"),
                "config": cfg,
            }
            scalars = {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}
            # metrics.json's "model" is model.name, or for an evaluation of a trained run (eval.run=...) that run's
            # model; a hypernetized run keeps the config's label, the row it builds
            hypernetized = row["model"] != OmegaConf.select(cfg, "model.name")
            rows.append({**row, **{k: v for k, v in scalars.items() if not (k == "model" and hypernetized)}})
    return pd.DataFrame(rows)


class ReportError(Exception):
    """Nothing to report (exit 2, like the other refusals)."""


# metrics.json statuses of a job refused before training (bad input): nothing was run, listed apart from failures
REFUSED = ("bad_config", "bad_checkpoint", "missing_data")


def build_report(paths: list[Path], out: Path) -> str:
    runs = load_runs(paths)
    if runs.empty:
        raise ReportError(f"no runs (metrics.json or .hydra/config.yaml) under {', '.join(map(str, paths))}; "
                          f"give run or sweep directories written by hyperbench.")
    if "error" not in runs:
        runs["error"] = None
    # task=summary runs (older ones wrote no metrics.json) are parameter breakdowns, never failures
    runs.loc[(runs.task == "summary") & (runs.status == "no_metrics"), "status"] = "summary"
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "runs.csv", runs.drop(columns="config").to_csv(index=False))
    ok = runs[runs.status == "ok"]
    superseded = runs[runs.status == "superseded"]  # interrupted, then continued by trainer.resume elsewhere
    summaries = runs[runs.status == "summary"]
    refused = runs[runs.status.isin(REFUSED)]
    failed = runs[~runs.status.isin(["ok", "superseded", "summary", *REFUSED])]
    counts = [f"{len(ok)} ok"] + [f"{len(df)} {what}" for df, what in (
        (superseded, "superseded by their resumed run"), (summaries, "parameter summaries"),
        (refused, "refused before running"), (failed, "failed")) if len(df)]
    sections = [f"# hyperbench report\n\nRuns read: {len(runs)} ({', '.join(counts)}) from {', '.join(map(str, paths))}"]
    if not ok.empty:
        for section in SECTIONS:
            sections += section(ok, out)
    if not summaries.empty:
        lines = [f"- `{r.run_dir}` ({r.model}, {r.data}): {int(r.total_params):,} parameters"
                 if pd.notna(getattr(r, "total_params", None)) else f"- `{r.run_dir}` ({r.model}, {r.data})"
                 for r in summaries.itertuples()]
        sections.append(f"## Parameter summaries (task=summary, {len(summaries)})\n\n" + "\n".join(lines))
    if not failed.empty:
        lines = [f"- `{r.run_dir}` ({r.model}): **{r.status}**: {str(r.error).strip()}" for r in failed.itertuples()]
        sections.append(f"## Failed runs ({len(failed)})\n\n" + "\n".join(lines))
    if not refused.empty:
        lines = [f"- `{r.run_dir}` ({r.model}): **{r.status}**: {str(r.error).strip()}" for r in refused.itertuples()]
        sections.append(f"## Refused before running: bad input ({len(refused)})\n\n" + "\n".join(lines))
    sections.append(references_markdown())
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
    try:
        text = build_report(args.paths, args.out or args.paths[0] / "report")
    except (ReportError, HyperbenchError) as exc:  # exit codes: 0 report written, 2 refused (argparse too), 1 crash
        print(f"hyperbench-report: {exc}", file=sys.stderr)
        raise SystemExit(2)
    print(text, end="")


if __name__ == "__main__":
    main()
