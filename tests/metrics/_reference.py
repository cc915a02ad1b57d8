"""Independent numpy / explicit-loop references for the metrics tests."""

import numpy as np


def votes_loop(spk, num_classes):
    spk = np.asarray(spk, dtype=np.float64)
    batch, _, width = spk.shape
    npc = width // num_classes
    votes = np.zeros((batch, num_classes))
    for b in range(batch):
        for c in range(num_classes):
            votes[b, c] = spk[b, :, c * npc : (c + 1) * npc].sum()
    return votes


def predictions_loop(spk, num_classes):
    predictions = []
    for row in votes_loop(spk, num_classes):
        best = 0
        for c in range(1, len(row)):
            if row[c] > row[best]:  # strict: ties go to the lowest class
                best = c
        predictions.append(best)
    return np.array(predictions)


def accuracy_ref(spk, y, num_classes):
    return float(np.mean(predictions_loop(spk, num_classes) == np.asarray(y)))


def recall_ref(spk, y, num_classes, positive):
    pred, y = predictions_loop(spk, num_classes), np.asarray(y)
    tp = np.sum((pred == positive) & (y == positive))
    fn = np.sum((pred != positive) & (y == positive))
    return float(tp / max(1, tp + fn))


def activity_ref(spikes_batches, membrane_batches):
    """Statistics over batches given as lists (per batch) of lists (per layer) of arrays."""
    result = {}
    for i in range(len(spikes_batches[0])):
        width = spikes_batches[0][i].shape[-1]
        s = np.concatenate([np.asarray(b[i], dtype=np.float64).reshape(-1, width) for b in spikes_batches])
        m = np.concatenate([np.asarray(b[i], dtype=np.float64).reshape(-1) for b in membrane_batches])
        dead = int(np.sum(s.sum(axis=0) == 0))
        result[f"layer_{i}/firing_rate"] = s.mean()
        result[f"layer_{i}/dead_neurons"] = dead
        result[f"layer_{i}/dead_neurons_fraction"] = dead / width
        result[f"layer_{i}/membrane_mean"] = m.mean()
        result[f"layer_{i}/membrane_var"] = m.var()
    return result
