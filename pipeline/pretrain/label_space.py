"""The detector's label space (object classes, attributes) as the pretraining heads need it.

Why scan the shards: MRC, MRC-kl and attribute prediction classify over the detector's classes,
and the shards record ids, not the detector's vocabulary size. One pass over the first shard (a
bounded number of samples) gives max id + 1; a later id beyond that is ignored by the heads,
never an index error (objectives_regions.py). Runs without those tasks skip the scan.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

CLASS_TASKS = ("mrc", "mrc_kl", "attr")


def corpus_label_space(paths: Sequence[Path], tasks: Sequence[str], limit: int = 2000) -> tuple[int, int]:
    """(num_classes, num_attributes) seen in the first shard; (0, 0) when no task classifies regions."""
    if not set(tasks) & set(CLASS_TASKS) or not paths:
        return 0, 0
    from laitkit.pipeline.pretrain.data import iter_samples

    classes = attributes = 0
    for i, s in enumerate(iter_samples([str(paths[0])])):
        r = s.regions
        if r is not None and r.num_boxes:
            classes = max(classes, int(r.obj_ids.max()) + 1)
            if r.soft_ids is not None and r.soft_ids.size:
                classes = max(classes, int(np.max(r.soft_ids)))  # column c+1 is class c
            attributes = max(attributes, int(r.attr_ids.max()) + 1)
        if i + 1 >= limit:
            break
    return max(classes, 1), max(attributes, 1)
