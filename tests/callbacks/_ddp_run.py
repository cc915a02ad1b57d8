"""Two-process CPU DDP run with the callbacks; each rank writes what it saw to <out>/rank<i>.pt.

Run as a script (Lightning's DDP launcher re-executes it for rank 1):
    python -m tests.callbacks._ddp_run <out_dir>
"""

import os
import sys

import lightning.pytorch as pl
import torch

from nwave_lightning.callbacks import BestModelCheckpoint, NWaveEarlyStopping, SignAnnealing, SurrogateScheduler
from tests.callbacks._tiny import TinyModule, loaders, make_trainer

# rank 1 reaches the threshold (0.9) at epoch 3, rank 0 never does: "any rank" must stop both at epoch 3
SCORES = {0: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], 1: [0.5, 0.6, 0.95, 0.99, 0.99, 0.99]}


class RankScores(TinyModule):
    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            # deliberately NOT synced: the callbacks must still agree across ranks
            self.log("val_score", SCORES[self.global_rank][self.current_epoch], sync_dist=False)


def main(out_dir):
    pl.seed_everything(0)
    torch.set_num_threads(1)
    stop = NWaveEarlyStopping("threshold", metric="val_score", mode="max", value=0.9)
    best = BestModelCheckpoint(metric="val_score", mode="max")
    anneal = SignAnnealing(alpha_start=1.0, alpha_end=4.0, total_epochs=3)
    sched = SurrogateScheduler("linear", start_value=5.0, end_value=10.0, total_steps=2)
    trainer = make_trainer(out_dir, 6, [stop, best, anneal, sched], devices=2, strategy="ddp")
    module = RankScores()
    trainer.fit(module, *loaders(n=32))
    result = {
        "stopped_epoch": stop.stopped_epoch,
        "current_epoch": trainer.current_epoch,
        "best_score": best.best_score,
        "best_model_path": best.best_model_path,
        "alpha": anneal.alpha,
        "surrogate": sched.value,
        "state_dict": {k: v.detach().clone() for k, v in module.net.state_dict().items()},
    }
    torch.save(result, os.path.join(out_dir, f"rank{trainer.global_rank}.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
