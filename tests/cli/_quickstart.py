"""The quick start shrunk to seconds, for the CLI tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
QUICKSTART = str(CONFIGS / "quickstart.yaml")
# The quick start, shrunk so that each in-process run takes seconds.
TINY = [
    "--data.init_args.n_train=32",
    "--data.init_args.n_val=16",
    "--data.init_args.n_test=16",
    "--data.init_args.n_steps=30",
    "--data.init_args.word_length=10",
    "--data.init_args.batch_size=8",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
    "--trainer.log_every_n_steps=1",
]
