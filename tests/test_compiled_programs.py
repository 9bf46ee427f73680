"""The compiled programs of the hot paths, read from XLA's optimized HLO: performance
guarantees that a refactor could silently lose while every value stays right (a float32 copy
of 16-bit logits, a dense compare where a scatter suffices, a gradient written in two passes,
a loss term written out and read back). Each test says what it guards and what it cost when
it was lost; speed itself is measured by benchmarks/, never asserted here."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss

# float64 references where a test builds them: 64-bit JAX arrays, scoped to each test.
pytestmark = pytest.mark.usefixtures("x64")


@pytest.mark.parametrize(
    "options", [{}, {"label_smoothing": 0.1}, {"label_smoothing": 0.1, "class_weights": "classes"}]
)
def test_bfloat16_cross_entropy_writes_no_float32_copy_of_the_logits(options):
    """16-bit logits are read as they are: no instruction of the compiled forward+backward
    outputs an (N, C) float32 array (arranged otherwise, XLA upcasts them all for the label's
    gather and writes the copy out, which doubles the time). With label smoothing, the
    smoothing sum's barrier must stay apart from the gather's: merged by CSE, the upcast
    stayed outside the sum's reduction and was written out (1 GiB of temp at 4096x32768,
    bf16 smoothing 1.6-2.0x the plain step's time)."""
    logits = jnp.zeros((512, 1024), jnp.bfloat16)  # 2**19 elements: the cond's one-read path
    labels = jnp.zeros((512,), jnp.int32)
    if options.get("class_weights") == "classes":
        options = {**options, "class_weights": jnp.linspace(0.5, 2.0, 1024, dtype=jnp.float32)}

    def loss(x):
        return jaxloss.cross_entropy(x, labels, **options).astype(float)

    step = jax.jit(jax.value_and_grad(loss))
    program = step.lower(logits).compile().as_text()
    entry = program[program.index("ENTRY") :]
    assert "bf16[512,1024]" in entry  # the gradient, in the logits' dtype
    assert "f32[512,1024]" not in entry


@pytest.mark.parametrize("num_classes", [1024, 64])
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "class_weights": "classes"}])
def test_float32_cross_entropy_adds_the_label_term_by_scatter_past_64_classes(options, num_classes):
    """For logits in the compute dtype with more than 64 classes the backward pass writes the
    dense terms of the gradient and scatters the label's N values onto it in place, instead of
    an iota compare over all (N, C) elements in the pass (which takes 1.23x the time at
    4096x32768): the compiled forward+backward holds a scatter-add (the test tier's older
    emitters expand it into a loop of N slice updates) and no (N, C) compare. Up to 64
    classes it is the other way round: the scatter's cost per row outweighs the compare's
    (float32 4096x32: the scatter took 1.6-2.6x the compare's time). Gradients equal the
    reference formula either way."""
    logits = jax.random.normal(jax.random.key(0), (128, num_classes), jnp.float32)
    labels = jax.random.randint(jax.random.key(1), (128,), 0, num_classes)
    if options.get("class_weights") == "classes":
        options = {**options, "class_weights": jnp.linspace(0.5, 2.0, num_classes)}

    def loss(x):
        return jaxloss.cross_entropy(x, labels, **options)

    step = jax.jit(jax.value_and_grad(loss))
    program = step.lower(logits).compile().as_text()
    scatters = num_classes > 64
    assert ("scatter-add" in program) == scatters
    assert (f"pred[128,{num_classes}]" in program) != scatters
    smoothing = options.get("label_smoothing", 0.0)
    weight = options.get("class_weights", jnp.ones(num_classes))
    target = (1 - smoothing) * jax.nn.one_hot(labels, num_classes) + smoothing / num_classes

    def reference(x):
        per_row = -jnp.sum(weight * target * jax.nn.log_softmax(x), axis=-1)
        return jnp.sum(per_row) / jnp.sum(weight[labels])

    value, grad = step(logits)
    expected_value, expected_grad = jax.jit(jax.value_and_grad(reference))(logits)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-9)


@pytest.fixture
def label_term_by_scatter(monkeypatch):
    """Every float32 CPU cross-entropy adds its label term by scatter, whatever its class
    count, for this test (compiled caches cleared on both sides, so no program of the other
    form is reused)."""
    from jaxloss._kernels import softmax_ce

    jax.clear_caches()
    monkeypatch.setattr(softmax_ce, "_COMPARE_MAX_CLASSES", 0)
    yield
    monkeypatch.undo()
    jax.clear_caches()


_LABEL_TERM_OPTIONS = [
    {},
    {"class_weights": True, "ignore_index": 3},
    {"label_smoothing": 0.2, "class_weights": True},
    {"label_smoothing": 0.1, "class_mask": "classes", "where": True},
    {"class_mask": "rows", "reduction": "none"},
]


def _label_term_case(options, dtype):
    """Values and gradients (w.r.t. logits, and class weights when given) of a cross-entropy
    with 10 classes and `options`, and whether its compiled program scatters."""
    keys = jax.random.split(jax.random.key(2), 3)
    logits = jax.random.normal(keys[0], (24, 10), dtype) * 3
    labels = jax.random.randint(keys[1], (24,), 0, 10).at[::5].set(3)
    options = dict(options)
    weights = jnp.linspace(0.5, 2.0, 10, dtype=dtype) if options.pop("class_weights", 0) else None
    mask = options.pop("class_mask", None)
    if mask == "classes":
        options["class_mask"] = jnp.arange(10) != 7
        labels = jnp.where(labels == 7, 0, labels)
    elif mask == "rows":
        # Row i leaves out the classes c with c + i = 0 (mod 6); its label is i + 1 (mod 6),
        # moved up by 6 on odd rows while that stays below 10: never left out, in range.
        options["class_mask"] = (jnp.arange(10) + jnp.arange(24)[:, None]) % 6 != 0
        rows = jnp.arange(24)
        labels = (rows + 1) % 6
        labels = jnp.where((rows % 2 == 1) & (labels < 4), labels + 6, labels)
    if options.pop("where", False):
        options["where"] = jax.random.bernoulli(keys[2], 0.7, (24,))

    def loss(x, w):
        return jnp.sum(jaxloss.cross_entropy(x, labels, class_weights=w, **options))

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    program = step.lower(logits, weights).compile().as_text()
    # A scatter onto the (24, 10) gradient (the class weights' own gradient is a scatter-add
    # in both forms).
    scatters = re.search(r"= f(32|64)\[24,10\]\{1,0\} (scatter|fusion)\([^\n]*scatter", program)
    return step(logits, weights), scatters is not None


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("options", _LABEL_TERM_OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_the_label_term_by_scatter_equals_the_compare(options, dtype, request):
    """The two forms of the label's gradient term (see `LogitGrad`) give the same loss and
    gradients, with class weights, ignore_index, smoothing, class masks and `where`: the
    compare (up to 64 classes) against the scatter forced on the same inputs."""
    compare, compare_scatters = _label_term_case(options, dtype)
    request.getfixturevalue("label_term_by_scatter")
    scatter, scatter_scatters = _label_term_case(options, dtype)
    assert (compare_scatters, scatter_scatters) == (False, True)
    # Finite, so that no nan can stand in for a value on both sides.
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(compare))
    rtol = 1e-12 if dtype == jnp.float64 else 1e-6
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol), compare, scatter
    )


def test_nll_loss_writes_its_gradient_in_one_pass_without_a_scatter():
    """nll_loss's label pick has a tangent whose transpose is one select of an iota compare
    (`jaxloss._core.class_inputs.pick_with_dense_gradient`), not autodiff's zeros-then-scatter: the
    compiled backward holds no scatter, and values, gradients and forward-mode tangents equal
    the plain gather's."""
    from jaxloss._core.class_inputs import pick_along_axis, pick_with_dense_gradient

    log_probs = jax.nn.log_softmax(jax.random.normal(jax.random.key(0), (6, 3, 5)), axis=1)
    labels = jax.random.randint(jax.random.key(1), (6, 5), 0, 3)
    weight = jnp.array([0.5, 1.0, 2.0])
    step = jax.jit(jax.grad(lambda x: jaxloss.nll_loss(x, labels, axis=1, class_weights=weight)))
    assert "scatter-add" not in step.lower(log_probs).compile().as_text()

    def plain(x):
        return jnp.sum(pick_along_axis(x, labels, 1) * jnp.arange(1.0, 6.0))

    def dense(x):
        return jnp.sum(pick_with_dense_gradient(x, labels, 1) * jnp.arange(1.0, 6.0))

    def derivatives(loss, tangent):
        value, grad = jax.value_and_grad(loss)(log_probs)
        return value, grad, jax.jvp(loss, (log_probs,), (tangent,))[1]

    tangent = jax.random.normal(jax.random.key(2), log_probs.shape)
    ours = jax.jit(functools.partial(derivatives, dense))(tangent)
    gathers = jax.jit(functools.partial(derivatives, plain))(tangent)
    np.testing.assert_array_equal(ours[0], gathers[0])
    np.testing.assert_array_equal(ours[1], gathers[1])
    np.testing.assert_allclose(ours[2], gathers[2], rtol=1e-6)
    # Linear in the log-probabilities: a zero hessian through the custom rule, as a gather's.
    small = (log_probs[:2], labels[:2])
    hessian = jax.jit(jax.hessian(lambda x: jnp.sum(pick_with_dense_gradient(x, small[1], 1))))(
        small[0]
    )
    assert hessian.shape == 2 * small[0].shape and not np.any(hessian)


def _fusions_writing(program: str, shape: str) -> list[str]:
    """The lines of the compiled program's entry computation whose fusion outputs `shape`
    (e.g. "f32[256,128]"): what the step writes to memory at that shape."""
    entry = program[program.index("ENTRY") :]
    return [
        line
        for line in entry.splitlines()
        if " fusion(" in line and shape in line.split("fusion(")[0]
    ]


def test_kl_div_reads_its_inputs_in_one_reduction_and_writes_only_the_gradient():
    """kl_div's t·(log t - x) is written without xlogy's select (log(t + tiny)), so XLA:CPU
    fuses the whole term into the loss's reduction and its forward+backward writes one (N, C)
    array, the gradient; the xlogy form writes the term out and reads it back (1.3x the
    time)."""
    logits = jax.random.normal(jax.random.key(0), (2, 256, 128), jnp.float32)
    log_probs, targets = jax.nn.log_softmax(logits[0]), jax.nn.softmax(logits[1])
    step = jax.jit(jax.value_and_grad(functools.partial(jaxloss.kl_div, reduction="batchmean")))
    written = _fusions_writing(step.lower(log_probs, targets).compile().as_text(), "f32[256,128]")
    assert len(written) == 1, written


def _weighted_smoothing_cross_entropy(x, labels):
    weights = jnp.linspace(0.5, 2.0, x.shape[-1], dtype=jnp.float32)
    return jaxloss.cross_entropy(x, labels, class_weights=weights, label_smoothing=0.1)


def _log_probs_and_entropy(x, labels):
    stats = jaxloss.token_log_probs(x, labels, with_entropy=True)
    return jnp.sum(stats.log_probs.astype(jnp.float32)) + jnp.sum(stats.entropy)


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float32])
@pytest.mark.parametrize("loss", [_weighted_smoothing_cross_entropy, _log_probs_and_entropy])
def test_row_sums_end_their_fusions(loss, dtype):
    """The row sums over (N, C) that further arithmetic follows end their YNNPACK fusion
    (`jaxloss._core.ops.row_sum`): no fusion of the compiled step holds a reduction with
    ops after it. Held in one fusion with the ops after it, the reduction's whole (N, C)
    input was written out first: cross-entropy's Σ_c w_c x_c (class weights and label
    smoothing) made the bf16 step at 65536x1000 2.0x the plain one (1.16x ended); the
    shifted logsumexp's Σ e^{x-m} (the fallback for extreme logits, in the cond's branch)
    made the float32 step 1.6x; token_log_probs' Σ e^{z-m} made its float32 step 1.7x.
    (At 4096x1000 XLA arranges the fusions as at 65536x1000; at some smaller shapes,
    otherwise.)"""
    num_rows, num_classes = 4096, 1000
    program = (
        jax.jit(jax.value_and_grad(lambda x, labels: loss(x, labels).astype(jnp.float32)))
        .lower(
            jax.ShapeDtypeStruct((num_rows, num_classes), dtype),
            jax.ShapeDtypeStruct((num_rows,), jnp.int32),
        )
        .compile()
        .as_text()
    )
    # Every YNNPACK fusion, the cond's branches included (the shifted logsumexp is one).
    called = [
        line.split("calls=")[1].split(",")[0]
        for line in program.splitlines()
        if "__ynn_fusion" in line
    ]
    bodies = [program[program.index(f"\n{name} (") :].split("\n}", 1)[0] for name in called]
    assert any(f"f32[{num_rows}]{{0}} reduce(" in body for body in bodies), "no row reduction"
    inner = [
        line.strip()
        for body in bodies
        for line in body.splitlines()
        if " reduce(" in line and "ROOT" not in line
    ]
    assert not inner, inner


_BRANCHED_LOSSES = {
    "huber_loss": lambda x, t: jaxloss.huber_loss(x, t, delta=0.5),
    "smooth_l1_loss": lambda x, t: jaxloss.smooth_l1_loss(x, t, beta=0.5),
    "hinge_embedding_loss": lambda x, t: jaxloss.hinge_embedding_loss(x, jnp.sign(t)),
    "mse_loss with where": lambda x, t: jaxloss.mse_loss(x, t, where=t > 0),
}


@pytest.mark.parametrize("name", sorted(_BRANCHED_LOSSES))
def test_branched_and_masked_losses_are_summed_without_writing_them_out(name):
    """A loss with an elementwise select (Huber's |d| < δ, a `where` mask) is folded onto an
    eighth of its last axis in the loop that computes it (`jaxloss._core.reduction.
    total_in_parts`), so the compiled mean's forward+backward writes one (N, C) array, the
    gradient. Summed plainly, the loss was written out whole and read back by the sum
    (Huber at 8192x128: 1.3-1.5x the folded step's time)."""
    shape = (1024, 128)
    program = (
        jax.jit(jax.value_and_grad(_BRANCHED_LOSSES[name]))
        .lower(jax.ShapeDtypeStruct(shape, jnp.float32), jax.ShapeDtypeStruct(shape, jnp.float32))
        .compile()
        .as_text()
    )
    written = _fusions_writing(program, "f32[1024,128]")
    assert len(written) == 1, written
    assert _fusions_writing(program, "f32[1024,16]")  # the folded loss
