"""``python -m nwave_lightning.cli.report EXPERIMENT_DIR --metric ... --mode ...``: an experiment's table and figures.

See :func:`nwave_lightning.hpo.report.write_report` for what is written.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pandas as pd

from ..hpo.report import write_report

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> dict[str, str]:
    """Parse ``argv``, write the report, print the top rows and the written paths."""
    parser = argparse.ArgumentParser(description="Table and figures of a finished experiment folder")
    parser.add_argument("experiment_dir", help="<storage_path>/<experiment_name>")
    parser.add_argument("--metric", required=True, help="selected metric (a logged TensorBoard tag)")
    parser.add_argument("--mode", default="max", choices=["min", "max"])
    parser.add_argument("--out", default=None, help="output folder (default <experiment_dir>/report)")
    parser.add_argument("--top", type=int, default=None, help="rows in report.md (all in report.csv)")
    args = parser.parse_args(argv)
    paths = write_report(args.experiment_dir, args.metric, args.mode, args.out, args.top)
    # Nullable dtypes: an epoch column with a failed trial's empty cell still prints as integers.
    print(pd.read_csv(paths["csv"]).convert_dtypes().head(args.top or 10).to_string(index=False))
    for name, path in paths.items():
        print(f"{name}: {path}")
    return paths


if __name__ == "__main__":
    main()
