"""jaxloss: every PyTorch loss criterion as a pure, jit/vmap/grad-compatible JAX function.

Native functions live here, grouped by family (classification, regression, embedding,
sequence, detection, focal); torch's and torchvision's exact signatures live in
`jaxloss.compat` (``functional``, ``nn`` and ``torchvision``); vocab-parallel losses for
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
from .detection import (
    alpha_iou_loss,
    box_area,
    box_convert,
    box_iou,
    complete_box_iou,
    complete_box_iou_loss,
    distance_box_iou,
    distance_box_iou_loss,
    eiou_loss,
    focal_eiou_loss,
    generalized_box_iou,
    generalized_box_iou_loss,
    iou_loss,
    siou_loss,
    wise_iou_loss,
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
from .focal import poly1_cross_entropy, sigmoid_focal_loss, softmax_focal_loss, z_loss
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
    "alpha_iou_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "box_area",
    "box_convert",
    "box_iou",
    "checked",
    "complete_box_iou",
    "complete_box_iou_loss",
    "cosine_embedding_loss",
    "cosine_similarity",
    "cross_entropy",
    "ctc_loss",
    "distance_box_iou",
    "distance_box_iou_loss",
    "eiou_loss",
    "focal_eiou_loss",
    "gaussian_nll_loss",
    "generalized_box_iou",
    "generalized_box_iou_loss",
    "hinge_embedding_loss",
    "huber_loss",
    "iou_loss",
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
    "poly1_cross_entropy",
    "sigmoid_focal_loss",
    "siou_loss",
    "smooth_l1_loss",
    "soft_margin_loss",
    "softmax_focal_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
    "wise_iou_loss",
    "z_loss",
]
