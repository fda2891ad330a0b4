"""laitkit: web images and captions in, filtered and featurised shards out, pretraining on top.

The repository's folders (`datasets/`, `extractors/`, `pipeline/`, `jobs/`) are installed as
subpackages of this one import package, so that a folder named `datasets` never shadows Hugging
Face's `datasets` on a user's path.
"""

import os

__version__ = "0.1.0"

# img2dataset imports albumentations, which otherwise asks PyPI for a newer version at import:
# laitkit never reaches outside the machine on its own.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
