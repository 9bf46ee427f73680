"""Bad input: wherever torch raises, jaxloss raises ValueError/TypeError naming the argument."""

import numpy as np
import pytest
import torch

from jaxloss.compat import functional as F
from jaxloss.compat import nn

# float64 comparisons: 64-bit JAX arrays, scoped to each test.
pytestmark = pytest.mark.usefixtures("x64")

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 5))
P = np.full((4, 5), 0.2)
IDX = np.array([0, 1, 2, 3])
# CTC: log_probs (T=8, N=3, C=5), padded targets (3, 3) and their lengths.
LP = np.log(rng.dirichlet(np.ones(5), (8, 3)))
CTC_Y = np.array([[1, 2, 2], [3, 1, 0], [4, 4, 4]])
CTC_IL = np.array([8, 6, 3])
CTC_TL = np.array([3, 2, 2])

# (id, criterion, args, kwargs, words our message must contain)
BAD_CALLS = [
    ("ce-argmaxed-hint", "cross_entropy", (rng.standard_normal(4), IDX), {}, ["target", "argmax"]),
    (
        "ce-onehot-int",
        "cross_entropy",
        (X, np.eye(5, dtype=np.int64)[:4]),
        {},
        ["target", "one-hot"],
    ),
    ("ce-float-indices", "cross_entropy", (X, IDX.astype(np.float64)), {}, ["target", "integer"]),
    ("ce-batch-mismatch", "cross_entropy", (X, IDX[:3]), {}, ["target", "[4]"]),
    ("ce-probs-shape", "cross_entropy", (X, P[:, :4]), {}, ["target", "[4, 5]"]),
    (
        "ce-kdim-target",
        "cross_entropy",
        (rng.standard_normal((2, 3, 4)), np.zeros((2, 5), np.int64)),
        {},
        ["target", "[2, 4]"],
    ),
    ("ce-weight-len", "cross_entropy", (X, IDX), {"weight": np.ones(4)}, ["weight", "[5]"]),
    ("ce-weight-2d", "cross_entropy", (X, IDX), {"weight": np.ones((1, 5))}, ["weight"]),
    ("ce-probs-weight-len", "cross_entropy", (X, P), {"weight": np.ones(4)}, ["weight"]),
    ("ce-reduction", "cross_entropy", (X, IDX), {"reduction": "avg"}, ["reduction", "avg"]),
    (
        "ce-smoothing-high",
        "cross_entropy",
        (X, IDX),
        {"label_smoothing": 1.5},
        ["label_smoothing", "1.5"],
    ),
    ("ce-smoothing-low", "cross_entropy", (X, IDX), {"label_smoothing": -0.1}, ["label_smoothing"]),
    ("ce-probs-ignore", "cross_entropy", (X, P), {"ignore_index": 1}, ["ignore_index"]),
    ("ce-oob", "cross_entropy", (X, np.array([0, 1, 2, 7])), {}, ["7", "out of range"]),
    ("ce-negative", "cross_entropy", (X, np.array([0, 1, 2, -1])), {}, ["-1", "out of range"]),
    ("ce-int-input", "cross_entropy", (np.ones((4, 5), np.int64), IDX), {}, ["input"]),
    ("ce-scalar-input", "cross_entropy", (np.float64(1.0), np.int64(0)), {}, ["input"]),
    ("nll-probs", "nll_loss", (X, P), {}, ["target", "integer"]),
    ("nll-oob", "nll_loss", (X, np.array([0, 1, 5, 3])), {}, ["5", "out of range"]),
    ("nll-weight", "nll_loss", (X, IDX), {"weight": np.ones(3)}, ["weight"]),
    ("kl-int-target", "kl_div", (X, np.ones((4, 5), np.int64)), {}, ["target"]),
    ("kl-reduction", "kl_div", (X, P), {"reduction": "avg"}, ["reduction"]),
    ("bce-range", "binary_cross_entropy", (np.array([1.5]), np.array([1.0])), {}, ["input", "1.5"]),
    (
        "bce-target-range",
        "binary_cross_entropy",
        (np.array([0.5]), np.array([1.5])),
        {},
        ["target", "1.5"],
    ),
    ("bce-shape", "binary_cross_entropy", (P, P[:1]), {}, ["target", "shape"]),
    (
        "bce-int-target",
        "binary_cross_entropy",
        (P, np.ones((4, 5), np.int64)),
        {},
        ["target", "float"],
    ),
    ("bce-weight", "binary_cross_entropy", (P, P), {"weight": np.ones(3)}, ["weight"]),
    ("bcel-shape", "binary_cross_entropy_with_logits", (X, P[0]), {}, ["target", "shape"]),
    (
        "bcel-int",
        "binary_cross_entropy_with_logits",
        (X, np.ones((4, 5), np.int64)),
        {},
        ["target"],
    ),
    (
        "bcel-posw",
        "binary_cross_entropy_with_logits",
        (X, P),
        {"pos_weight": np.ones(4)},
        ["pos_weight"],
    ),
    ("l1-weight", "l1_loss", (X, X), {"weight": np.ones(5)}, ["weight"]),
    ("l1-int", "l1_loss", (np.ones(3, np.int64), np.ones(3, np.int64)), {}, ["input"]),
    ("mse-shapes", "mse_loss", (X, X[:3]), {}, ["broadcast"]),
    ("mse-reduction", "mse_loss", (X, X), {"reduction": "batchmean"}, ["reduction"]),
    ("huber-delta", "huber_loss", (X, X), {"delta": 0.0}, ["delta"]),
    ("huber-weight", "huber_loss", (X, X), {"weight": np.ones((4, 1))}, ["weight"]),
    ("smoothl1-beta", "smooth_l1_loss", (X, X), {"beta": -1.0}, ["beta"]),
    ("poisson-reduction", "poisson_nll_loss", (X, X), {"reduction": "x"}, ["reduction"]),
    ("poisson-shape", "poisson_nll_loss", (X[0], X[0, :2]), {}, ["broadcast"]),
    ("gauss-neg", "gaussian_nll_loss", (X, X, -np.ones((4, 5))), {}, ["var", "non-negative"]),
    ("gauss-neg-float", "gaussian_nll_loss", (X, X, -1.0), {}, ["var", "non-negative"]),
    ("gauss-var-shape", "gaussian_nll_loss", (X, X, np.ones(5)), {}, ["var", "[5]"]),
    ("gauss-var-scalar", "gaussian_nll_loss", (X, X, np.array(1.0)), {}, ["var"]),
    (
        "gauss-reduction",
        "gaussian_nll_loss",
        (X, X, np.ones((4, 5))),
        {"reduction": "batchmean"},
        ["reduction"],
    ),
    ("mrl-dims", "margin_ranking_loss", (X, X, np.ones(5)), {}, ["dimensions"]),
    ("hinge-shape", "hinge_embedding_loss", (X, np.ones(3)), {}, ["broadcast"]),
    ("mlm-oob", "multilabel_margin_loss", (X, np.full((4, 5), 7)), {}, ["7", "out of range"]),
    ("mlm-oob-neg", "multilabel_margin_loss", (X, np.full((4, 5), -2)), {}, ["-2"]),
    ("mlm-shape", "multilabel_margin_loss", (X, np.zeros((4, 3), np.int64)), {}, ["target"]),
    ("mlm-float", "multilabel_margin_loss", (X, np.zeros((4, 5))), {}, ["target", "integer"]),
    (
        "mlm-3d",
        "multilabel_margin_loss",
        (rng.standard_normal((2, 3, 4)), np.zeros((2, 3, 4), np.int64)),
        {},
        ["input"],
    ),
    ("softmargin-shape", "soft_margin_loss", (X, np.ones(3)), {}, ["broadcast"]),
    ("mlsm-weight", "multilabel_soft_margin_loss", (X, P), {"weight": np.ones(2)}, ["weight"]),
    ("cos-dims", "cosine_embedding_loss", (X, X, np.ones(5)), {}, ["target", "[5]"]),
    ("cos-1d-target-1d-input", "cosine_embedding_loss", (X[0], X[0], np.ones(1)), {}, ["target"]),
    ("cos-0d-target-2d-input", "cosine_embedding_loss", (X, X, np.ones(())), {}, ["target"]),
    (
        "cos-3d",
        "cosine_embedding_loss",
        (np.ones((2, 3, 4)), np.ones((2, 3, 4)), np.ones((2, 3))),
        {},
        ["target"],
    ),
    ("mm-p", "multi_margin_loss", (X, IDX), {"p": 3}, ["p", "3"]),
    ("mm-oob", "multi_margin_loss", (X, np.array([0, 5, 1, 2])), {}, ["5", "out of range"]),
    ("mm-weight", "multi_margin_loss", (X, IDX), {"weight": np.ones(2)}, ["weight"]),
    ("mm-weight-2d", "multi_margin_loss", (X, IDX), {"weight": np.ones((1, 5))}, ["weight"]),
    ("mm-target-2d", "multi_margin_loss", (X, IDX[:, None]), {}, ["target"]),
    ("mm-3d", "multi_margin_loss", (np.ones((2, 3, 4)), np.zeros((2, 3), np.int64)), {}, ["input"]),
    ("triplet-margin", "triplet_margin_loss", (X, X, X), {"margin": 0.0}, ["margin"]),
    ("triplet-dims", "triplet_margin_loss", (X, X, X[0]), {}, ["dimensions"]),
    ("triplet-shapes", "triplet_margin_loss", (X, X[:3], X), {}, ["broadcast"]),
    ("tmwd-margin", "triplet_margin_with_distance_loss", (X, X, X), {"margin": -1.0}, ["margin"]),
    (
        "tmwd-reduction",
        "triplet_margin_with_distance_loss",
        (X, X, X),
        {"reduction": "x"},
        ["reduction"],
    ),
    ("tmwd-dims", "triplet_margin_with_distance_loss", (X, X, X[0]), {}, ["dimensions"]),
    ("ctc-rank", "ctc_loss", (LP[0, 0], CTC_Y, CTC_IL, CTC_TL), {}, ["log_probs", "(T, N, C)"]),
    ("ctc-rank4", "ctc_loss", (LP[None], CTC_Y, CTC_IL, CTC_TL), {}, ["log_probs", "[1, 8, 3, 5]"]),
    (
        "ctc-input-lengths-count",
        "ctc_loss",
        (LP, CTC_Y, CTC_IL[:2], CTC_TL),
        {},
        ["input_lengths", "batch_size"],
    ),
    (
        "ctc-target-lengths-count",
        "ctc_loss",
        (LP, CTC_Y, CTC_IL, CTC_TL[:1]),
        {},
        ["target_lengths", "batch_size"],
    ),
    (
        "ctc-input-too-long",
        "ctc_loss",
        (LP, CTC_Y, np.array([9, 6, 3]), CTC_TL),
        {},
        ["input_lengths", "[0, 8]", "9"],
    ),
    (
        "ctc-target-longer-than-padding",
        "ctc_loss",
        (LP, CTC_Y, CTC_IL, np.array([4, 2, 2])),
        {},
        ["target_lengths", "[0, 3]", "4"],
    ),
    (
        "ctc-negative-length",
        "ctc_loss",
        (LP, CTC_Y, np.array([8, -1, 3]), CTC_TL),
        {},
        ["input_lengths", "-1"],
    ),
    (
        "ctc-float-lengths",
        "ctc_loss",
        (LP, CTC_Y, CTC_IL.astype(np.float64), CTC_TL),
        {},
        ["input_lengths", "integral"],
    ),
    (
        "ctc-concatenated-short",
        "ctc_loss",
        (LP, np.array([1, 2, 2, 3, 1, 4]), CTC_IL, CTC_TL),
        {},
        ["targets", "7", "6"],
    ),
    ("ctc-blank-high", "ctc_loss", (LP, CTC_Y, CTC_IL, CTC_TL), {"blank": 5}, ["blank", "5"]),
    ("ctc-blank-negative", "ctc_loss", (LP, CTC_Y, CTC_IL, CTC_TL), {"blank": -1}, ["blank", "-1"]),
    (
        "ctc-reduction",
        "ctc_loss",
        (LP, CTC_Y, CTC_IL, CTC_TL),
        {"reduction": "avg"},
        ["reduction", "avg"],
    ),
    (
        "ctc-target-is-blank",
        "ctc_loss",
        (LP, np.array([[0, 2, 2], [3, 1, 0], [4, 4, 4]]), CTC_IL, CTC_TL),
        {},
        ["targets", "blank", "0"],
    ),
    (
        "ctc-target-out-of-range",
        "ctc_loss",
        (LP, np.array([[7, 2, 2], [3, 1, 0], [4, 4, 4]]), CTC_IL, CTC_TL),
        {},
        ["targets", "7"],
    ),
]


# Where jaxloss is deliberately stricter than torch (torch silently accepts these).
STRICTER_THAN_TORCH = {
    # torch 2.13 checks label_smoothing <= 1 but accepts negative values, which turn smoothing
    # into "sharpening" nobody asks for; the documented range is [0, 1].
    "ce-smoothing-low",
    # torch reads a target equal to the blank, or outside [0, C), as if it were a class and
    # returns a number (for an out-of-range class, from memory past the row).
    "ctc-target-is-blank",
    "ctc-target-out-of-range",
}


def _to_torch(value):
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        return torch.from_numpy(np.asarray(value).copy())
    return value


@pytest.mark.parametrize("call", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_raises_where_torch_raises(call):
    case_id, name, args, kwargs, words = call
    torch_call = lambda: getattr(torch.nn.functional, name)(
        *map(_to_torch, args), **{k: _to_torch(v) for k, v in kwargs.items()}
    )
    if case_id in STRICTER_THAN_TORCH:
        torch_call()  # torch accepts it; jaxloss still refuses below
    else:
        with pytest.raises(Exception):
            torch_call()
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(F, name)(*args, **kwargs)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} missing from: {message}"


@pytest.mark.parametrize(
    "make",
    [
        lambda m: m.MultiMarginLoss(p=3),
        lambda m: m.MultiMarginLoss(weight=np.ones((2, 2)) if m is nn else torch.ones(2, 2)),
        lambda m: m.TripletMarginLoss(margin=0),
        lambda m: m.TripletMarginWithDistanceLoss(margin=-1.0),
    ],
    ids=["multimargin-p", "multimargin-weight", "triplet-margin", "triplet-distance-margin"],
)
def test_module_constructors_raise_where_torch_does(make):
    with pytest.raises(ValueError):
        make(torch.nn)
    with pytest.raises(ValueError):
        make(nn)


def test_messages_say_what_arrived():
    with pytest.raises(ValueError) as info:
        F.cross_entropy(X, IDX, weight=np.ones(3))
    assert "got [3]" in str(info.value) and "cross_entropy" in str(info.value)
    with pytest.raises(TypeError) as info:
        F.binary_cross_entropy(P, np.ones((4, 5), np.int64))
    assert "int64" in str(info.value)
