"""Vineet's CS618 report CIFAR-10 section: Tables 3, 4 and 5 (VGG-Block1, 2, 3), one table per block."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..files import write_text
from ..models.names import parse_model_name
from .published import CIFAR_MISPRINTS, CIFAR_TABLES, VINEET, row_label
from .common import markdown, selection_table


def block_of(model: str) -> int | None:
    name = parse_model_name(model)
    return None if name is None else name.blocks


def _in_block_label(model: str) -> str:
    """VGG-Block2 Hyper16_16 -> Hyper16_16: the block is the table's."""
    return row_label(model).split(" ", 1)[1]


def cifar_tables(ok: pd.DataFrame) -> dict[int, pd.DataFrame]:
    runs = ok.assign(block=ok.model.map(block_of)).dropna(subset=["block"])
    return {int(b): selection_table(runs[runs.block == b], list(CIFAR_TABLES.get(int(b), {})), _in_block_label,
                                    CIFAR_TABLES.get(int(b), {}), CIFAR_MISPRINTS)
            for b in sorted(runs.block.unique())}


def section(ok: pd.DataFrame, out: Path) -> list[str]:
    cifar = ok[(ok.task == "classify") & (ok.data == "cifar10")]
    if cifar.empty:
        return []
    parts = []
    for block, table in cifar_tables(cifar).items():
        write_text(out / f"table{block + 2}_cifar_block{block}.csv", table.to_csv(index=False))
        md = (f"## CIFAR-10 VGG-Block{block}: Table {block + 2} of {VINEET}\n\n"
              "Conv Parameters exclude the first conv layer and come out of the model. Best Test Accuracy = "
              "test accuracy at the best-validation epoch of the validation-selected lr.\n\n" + markdown(table))
        write_text(out / f"table{block + 2}_cifar_block{block}.md", md + "\n")
        parts.append(md)
    return parts
