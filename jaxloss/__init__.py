"""jaxloss: every PyTorch loss criterion as a pure, jit/vmap/grad-compatible JAX function.

Native functions live here, grouped by family (classification, regression, embedding,
sequence, detection, focal, margin, segmentation, fused, post_training, preference, policy,
contrastive, adaptive); torch's and torchvision's exact signatures live in `jaxloss.compat`
(``functional``, ``nn`` and ``torchvision``); vocab-parallel losses for ``shard_map`` code
(and the contrastive losses of a batch split over devices) live in `jaxloss.parallel`.
"""

# Each family module lists its public functions in its `__all__` (in the order of its docs
# page); they are jaxloss's, and a new loss is registered there once.
from . import (
    adaptive,
    classification,
    contrastive,
    detection,
    embedding,
    focal,
    fused,
    margin,
    parallel,
    policy,
    post_training,
    preference,
    regression,
    segmentation,
    sequence,
)
from ._core.checked_mode import checked
from .adaptive import *  # noqa: F403
from .classification import *  # noqa: F403
from .contrastive import *  # noqa: F403
from .detection import *  # noqa: F403
from .embedding import *  # noqa: F403
from .focal import *  # noqa: F403
from .fused import *  # noqa: F403
from .margin import *  # noqa: F403
from .policy import *  # noqa: F403
from .post_training import *  # noqa: F403
from .preference import *  # noqa: F403
from .regression import *  # noqa: F403
from .segmentation import *  # noqa: F403
from .sequence import *  # noqa: F403

__version__ = "0.1.0"

# In the order of the docs' families; `__all__ +=` a module's `__all__` is the form that type
# checkers read.
__all__ = ["checked", "parallel"]
__all__ += classification.__all__
__all__ += regression.__all__
__all__ += embedding.__all__
__all__ += sequence.__all__
__all__ += detection.__all__
__all__ += focal.__all__
__all__ += margin.__all__
__all__ += segmentation.__all__
__all__ += fused.__all__
__all__ += post_training.__all__
__all__ += preference.__all__
__all__ += policy.__all__
__all__ += contrastive.__all__
__all__ += adaptive.__all__
