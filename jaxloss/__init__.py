"""jaxloss: every PyTorch loss criterion as a pure, jit/vmap/grad-compatible JAX function.

Native functions live here, grouped by family (classification, regression, embedding); torch's
exact signatures live in `jaxloss.compat` (``functional`` and ``nn``); vocab-parallel losses for
``shard_map`` code live in `jaxloss.parallel`.
"""

from . import parallel
from ._checked import checked
from .adaptive import adaptive_log_softmax, adaptive_softmax_loss
from .classification import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    kl_div,
    multi_margin_loss,
    multilabel_margin_loss,
    multilabel_soft_margin_loss,
    nll_loss,
    soft_margin_loss,
)
from .embedding import (
    cosine_embedding_loss,
    cosine_similarity,
    hinge_embedding_loss,
    margin_ranking_loss,
    pairwise_distance,
    triplet_margin_loss,
    triplet_margin_with_distance_loss,
)
from .fused import linear_cross_entropy
from .regression import (
    gaussian_nll_loss,
    huber_loss,
    l1_loss,
    mse_loss,
    poisson_nll_loss,
    smooth_l1_loss,
)
from .sequence import ctc_loss

__version__ = "0.1.0"

__all__ = [
    "adaptive_log_softmax",
    "adaptive_softmax_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "checked",
    "cosine_embedding_loss",
    "cosine_similarity",
    "cross_entropy",
    "ctc_loss",
    "gaussian_nll_loss",
    "hinge_embedding_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "linear_cross_entropy",
    "margin_ranking_loss",
    "mse_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "pairwise_distance",
    "parallel",
    "poisson_nll_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]
