"""CLIP's and SigLIP's losses over a batch split across 2, 3, 4 and 8 CPU devices
(tests/conftest.py): jaxloss.parallel.clip_loss and siglip_loss inside shard_map, and the plain
losses on Explicit (and Auto) meshes, equal the single-device loss on the global batch, values
and gradients (both towers, the shared scale and bias). Each device's value and gradients
are open_clip 3.3.0's per rank, for every ``local_loss`` x ``gather_with_grad`` setting of
``ClipLoss`` and for ``SigLipLoss``, against open_clip itself run in 4 torch.distributed
(gloo) processes. SigLIP's ring moves n-1 blocks of texts per device and nothing of the
global batch's size exists on any device."""

import functools
import re
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from bounded_processes import free_port, run_bounded
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss.parity.hlo import collectives

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (CPU) devices")

D = 5
OPEN_CLIP_WORKER = Path(__file__).with_name("open_clip_worker.py")
LOSSES = {"clip": jaxloss.clip_loss, "siglip": jaxloss.siglip_loss}


def _mesh(n, axis_type=AxisType.Auto):
    return jax.make_mesh((n,), ("batch",), axis_types=(axis_type,), devices=jax.devices()[:n])


def _problem(rows, seed=0):
    rng = np.random.default_rng(seed)
    image, text = rng.normal(size=(rows, D)), rng.normal(size=(rows, D))
    groups = rng.integers(0, rows // 2, size=rows)
    valid = rng.uniform(size=rows) > 0.25
    return image, text, groups, valid


def _per_device(kind, mesh, options, *, where=None, group_ids=None, reduce=None):
    """f(image, text, scale, bias) -> every device's loss, (n,) (or their pmean, `reduce`),
    from the parallel loss under shard_map on `mesh` with the rows split over 'batch'."""
    parallel = {"clip": jaxloss.parallel.clip_loss, "siglip": jaxloss.parallel.siglip_loss}[kind]
    extras = [a for a in (where, group_ids) if a is not None]

    def local(image, text, scale, bias, *extra):
        named = dict(zip([n for n, a in (("where", where), ("group_ids", group_ids))
                          if a is not None], extra))  # fmt: skip
        loss = parallel(image, text, scale, bias, axis_name="batch", **named, **options)
        return jax.lax.pmean(loss, "batch") if reduce else loss[None]

    row = P("batch")
    mapped = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(row, row, P(), P(), *([row] * len(extras))),
        out_specs=P() if reduce else row,
    )

    def f(image, text, scale, bias):
        placed = [jax.device_put(a, NamedSharding(mesh, row)) for a in (image, text, *extras)]
        scalars = [jax.device_put(a, NamedSharding(mesh, P())) for a in (scale, bias)]
        return mapped(*placed[:2], *scalars, *placed[2:])

    return f


SETTINGS = [
    ("siglip", dict(method="ring"), 2),
    ("siglip", dict(method="ring"), 3),
    ("siglip", dict(method="ring"), 4),
    ("siglip", dict(method="ring"), 8),
    ("siglip", dict(method="gather"), 4),
    ("clip", dict(local_loss=False), 4),
    ("clip", dict(local_loss=True), 4),
    ("clip", dict(local_loss=True), 8),
]
# The default tier: every ring size's parity (an extra rightward round or not) and every
# method once, half of them with padding and groups; --full runs the whole product.
DEFAULT = {("siglip", 2, False), ("siglip", 3, True), ("siglip", 8, True), ("clip", 8, False)}


def _default(kind, options, n, masked) -> bool:
    if options.get("method") == "gather" or options.get("local_loss") is False:
        return masked
    return (kind, n, masked) in DEFAULT


CASES = [
    pytest.param(
        kind, options, n, masked,
        id=f"{kind}-{'-'.join(map(str, options.values()))}-{n}-"
        + ("where_and_groups" if masked else "all_rows"),
        marks=() if _default(kind, options, n, masked) else pytest.mark.slow,
    )
    for kind, options, n in SETTINGS
    for masked in (False, True)
]  # fmt: skip


@pytest.mark.parametrize("kind, options, n, masked", CASES)
def test_pmean_of_the_devices_is_the_global_loss(kind, options, n, masked, x64):
    image, text, groups, valid = _problem(3 * n, seed=n)
    extras = dict(where=jnp.asarray(valid), group_ids=jnp.asarray(groups)) if masked else {}
    scale, bias = jnp.asarray(2.0), jnp.asarray(-1.0)
    sharded = _per_device(kind, _mesh(n), options, reduce=True, **extras)
    got, grads = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1, 2, 3)))(
        image, text, scale, bias
    )
    want, want_grads = jax.value_and_grad(
        lambda *a: LOSSES[kind](*a, **extras), argnums=(0, 1, 2, 3)
    )(image, text, scale, bias)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-13)


@pytest.fixture(scope="module")
def open_clip_ranks(tmp_path_factory):
    """open_clip's per-rank losses and gradients, from 4 torch.distributed gloo processes."""
    world = 4
    directory = tmp_path_factory.mktemp("open_clip")
    image, text, _, _ = _problem(3 * world, seed=7)
    inputs = directory / "inputs.npz"
    np.savez(inputs, image=image, text=text, scale=np.float64(2.5), bias=np.float64(-1.5))
    port = free_port()
    outputs = [directory / f"rank{rank}.npz" for rank in range(world)]
    commands = [
        [sys.executable, str(OPEN_CLIP_WORKER), str(port), str(rank), str(world), str(inputs),
         str(outputs[rank])]
        for rank in range(world)
    ]  # fmt: skip
    run_bounded(commands, directory, time_limit_s=120)
    return (image, text), [dict(np.load(out)) for out in outputs]


OPEN_CLIP_SETTINGS = {
    "clip-local0-grad0": ("clip", dict(local_loss=False, gather_with_grad=False)),
    "clip-local0-grad1": ("clip", dict(local_loss=False, gather_with_grad=True)),
    "clip-local1-grad0": ("clip", dict(local_loss=True, gather_with_grad=False)),
    "clip-local1-grad1": ("clip", dict(local_loss=True, gather_with_grad=True)),
    "siglip-bidir": ("siglip", dict(method="ring")),
    "siglip-gather": ("siglip", dict(method="gather")),
}


def test_each_device_is_open_clips_rank(open_clip_ranks, x64):
    """For every setting, each device's value is open_clip's on that rank, and the gradient
    of the sum of the devices' values is what each rank's backward leaves on its own rows
    (open_clip's gradients before data-parallel averaging), and the sum of the ranks' scale
    and bias gradients. open_clip's four SigLIP exchanges (bidir, shift, reduce, gather) agree
    with each other, so the ring and the gather cover them all. (One test: the 4 torch
    processes run once per test process.)"""
    for setting in OPEN_CLIP_SETTINGS:
        _check_ranks(setting, *open_clip_ranks)
    for result in open_clip_ranks[1]:
        for impl in ("shift", "reduce", "gather"):
            for arg in ("loss", "image", "text", "scale", "bias"):
                np.testing.assert_allclose(
                    result[f"siglip-{impl}/{arg}"], result[f"siglip-bidir/{arg}"], rtol=1e-12
                )


def _check_ranks(setting, towers, ranks):
    image, text = towers
    kind, options = OPEN_CLIP_SETTINGS[setting]
    n = len(ranks)
    per_device = _per_device(kind, _mesh(n), options)
    scale, bias = jnp.asarray(2.5), jnp.asarray(-1.5)

    def summed(*args):
        losses = per_device(*args)
        return jnp.sum(losses), losses

    (_, losses), grads = jax.jit(jax.value_and_grad(summed, argnums=(0, 1, 2, 3), has_aux=True))(
        image, text, scale, bias
    )
    rows = image.shape[0] // n
    for rank, result in enumerate(ranks):
        np.testing.assert_allclose(
            losses[rank], result[f"{setting}/loss"], rtol=1e-12, err_msg=f"{setting} rank {rank}"
        )
        own = slice(rank * rows, (rank + 1) * rows)
        for got, arg in ((grads[0][own], "image"), (grads[1][own], "text")):
            np.testing.assert_allclose(
                got, result[f"{setting}/{arg}"], rtol=1e-10, atol=1e-13,
                err_msg=f"{setting} rank {rank}: d {arg}",
            )  # fmt: skip
    for got, arg in ((grads[2], "scale"), (grads[3], "bias")):
        want = sum(result[f"{setting}/{arg}"] for result in ranks)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-13, err_msg=f"{setting}: d {arg}")


def test_gradient_without_the_gather_is_the_documented_one(x64):
    """gather_with_grad=False, local_loss=False: each device's value has the exact global
    gradient for its own rows, so the pmean's gradient is 1/n of the global one."""
    n = 4
    image, text, _, _ = _problem(3 * n, seed=11)
    pmean = _per_device("clip", _mesh(n), dict(gather_with_grad=False), reduce=True)
    grads = jax.jit(jax.grad(pmean, argnums=(0, 1)))(
        image, text, jnp.asarray(2.0), jnp.asarray(0.0)
    )
    want = jax.grad(jaxloss.clip_loss, argnums=(0, 1))(image, text, 2.0)
    for g, w in zip(grads, want):
        np.testing.assert_allclose(g, w / n, rtol=1e-11)


EXPLICIT_LAYOUTS = {
    "1d": ((8,), ("batch",), P("batch", None)),
    "2d_both_axes": ((2, 4), ("data", "model"), P(("data", "model"), None)),
    "2d_width_split": ((2, 4), ("data", "model"), P("data", "model")),
}


@pytest.mark.parametrize(
    "kind, layout",
    [
        pytest.param(kind, layout, marks=() if default else pytest.mark.slow)
        for kind, layout, default in [
            ("clip", "1d", True), ("siglip", "1d", False), ("siglip", "2d_both_axes", True),
            ("clip", "2d_width_split", True), ("clip", "2d_both_axes", False),
            ("siglip", "2d_width_split", False),
        ]
    ],
)  # fmt: skip
def test_explicit_mesh_runs_per_device(kind, layout, x64):
    """On an Explicit mesh the plain loss runs per device (SigLIP's ring, CLIP's gather) over
    the axes that split the batch; a split embedding width is gathered first. Values,
    'none', and gradients equal one device's, and the gradients keep their shardings."""
    shape, names, spec = EXPLICIT_LAYOUTS[layout]
    mesh = jax.make_mesh(shape, names, axis_types=(AxisType.Explicit,) * len(shape))
    image, text, groups, valid = _problem(16, seed=3)
    image, text = np.pad(image, ((0, 0), (0, 3))), np.pad(text, ((0, 0), (0, 3)))  # width 8
    extras = dict(where=jnp.asarray(valid), group_ids=jnp.asarray(groups))
    want, want_grads = jax.value_and_grad(
        lambda i, t, s: LOSSES[kind](i, t, s, -0.5, normalize=True, **extras), argnums=(0, 1, 2)
    )(image, text, 3.0)
    want_rows = LOSSES[kind](image, text, 3.0, -0.5, normalize=True, reduction="none", **extras)
    with jax.set_mesh(mesh):
        i, t = (jax.device_put(a, spec) for a in (image, text))
        placed = {k: jax.device_put(v, P(spec[0])) for k, v in extras.items()}

        def loss(i, t, s, reduction="mean"):
            return LOSSES[kind](i, t, s, -0.5, normalize=True, reduction=reduction, **placed)

        got, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(i, t, 3.0)
        rows = jax.jit(functools.partial(loss, reduction="none"))(i, t, 3.0)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(rows, want_rows, rtol=1e-12, atol=1e-15)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)
    assert grads[0].sharding.spec == i.sharding.spec


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_auto_mesh_under_jit(kind):
    """On an Auto mesh the plain loss is partitioned by XLA like any other jitted code."""
    mesh = _mesh(8, AxisType.Auto)
    image, text, _, _ = (np.asarray(a, np.float32) if a.dtype.kind == "f" else a
                         for a in _problem(16, seed=4))  # fmt: skip
    sharding = NamedSharding(mesh, P("batch"))
    got = jax.jit(LOSSES[kind])(
        jax.device_put(image, sharding), jax.device_put(text, sharding), 2.0, -1.0
    )
    np.testing.assert_allclose(got, LOSSES[kind](image, text, 2.0, -1.0), rtol=1e-6)


def test_ring_moves_n_minus_1_text_blocks_and_holds_nothing_of_the_global_batch():
    """The compiled per-device programs of SigLIP's ring on an Explicit mesh: the forward's
    collective permutes carry (n-1)·B/n·D values; the value and gradient together walk the
    ring once, the texts and their gradients (2·(n-1)·B/n·D); nothing gathers, and no array
    has a dimension of the global batch B (no (B/n, B) or (B, B) logits, no gathered texts).
    The per-device rows of jaxloss.parallel.siglip_loss (a custom VJP) walk it a second time
    for the gradient."""
    n, rows, width = 8, 16, 24  # B = 128
    mesh = _mesh(n, AxisType.Explicit)
    image = np.random.default_rng(0).normal(size=(n * rows, width)).astype(np.float32)
    text = np.random.default_rng(1).normal(size=(n * rows, width)).astype(np.float32)

    def loss(i, t):
        return jaxloss.siglip_loss(i, t, 10.0, -10.0)

    def rows_loss(i, t):
        return jnp.sum(jaxloss.siglip_loss(i, t, 10.0, -10.0, reduction="none"))

    with jax.set_mesh(mesh):
        i, t = (jax.device_put(a, P("batch")) for a in (image, text))
        programs = {
            "forward": jax.jit(loss),
            "value and gradient": jax.jit(jax.value_and_grad(loss, (0, 1))),
            "per-device rows, value and gradient": jax.jit(jax.value_and_grad(rows_loss, (0, 1))),
        }
        hlo = {name: step.lower(i, t).compile().as_text() for name, step in programs.items()}
    block = rows * width
    for name, walks in (("forward", 1), ("value and gradient", 2),
                        ("per-device rows, value and gradient", 3)):  # fmt: skip
        moved = [c for c in collectives(hlo[name]) if c.kind == "collective-permute"]
        assert sum(c.elements * c.executions for c in moved) == walks * (n - 1) * block, name
        kinds = {c.kind for c in collectives(hlo[name])}
        assert "all-gather" not in kinds and "collective-permute" in kinds, kinds
        shapes = re.findall(r"[fsu]\d+\[([\d,]+)\]", hlo[name])
        assert not [s for s in shapes if str(n * rows) in s.split(",")], "a global-batch array"


@pytest.mark.parametrize("kind", [pytest.param("clip", marks=pytest.mark.slow), "siglip"])
def test_forward_mode_on_an_explicit_mesh(kind, x64):
    """jvp (and with it jacfwd and Hessians) of the per-device losses equals one device's."""
    mesh = _mesh(4, AxisType.Explicit)
    image, text, _, valid = _problem(12, seed=5)
    t_image, t_text, _, _ = _problem(12, seed=6)

    def loss(i, t, s, where):
        return LOSSES[kind](i, t, s, -1.0, where=where)

    want = jax.jvp(lambda i, t, s: loss(i, t, s, valid), (image, text, 2.0), (t_image, t_text, 0.5))
    with jax.set_mesh(mesh):
        placed = [jax.device_put(a, P("batch")) for a in (image, text, t_image, t_text, valid)]
        got = jax.jit(
            lambda i, t, ti, tt, where: jax.jvp(
                lambda i, t, s: loss(i, t, s, where), (i, t, 2.0), (ti, tt, 0.5)
            )
        )(*placed)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-11)


def test_bfloat16_towers_on_the_ring():
    """bf16 embeddings travel the ring as bf16 (their gradients accumulate in float32): the
    loss and gradients come back in bf16, within bf16 rounding of the float32 loss."""
    mesh = _mesh(8, AxisType.Explicit)
    image, text = (np.asarray(a, np.float32) for a in _problem(64, seed=9)[:2])

    def loss(i, t):
        return jaxloss.siglip_loss(i, t, 2.0, -1.0, normalize=True)

    want, want_grad = jax.value_and_grad(loss)(image, text)
    with jax.set_mesh(mesh):
        low = [jax.device_put(jnp.asarray(a, jnp.bfloat16), P("batch")) for a in (image, text)]
        got, grad = jax.jit(jax.value_and_grad(loss))(*low)
    assert got.dtype == grad.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.float32(got), want, rtol=1e-2)
    scale = np.abs(want_grad).max()
    np.testing.assert_allclose(np.asarray(grad, np.float32), want_grad, atol=1e-2 * scale)


@pytest.mark.parametrize("kind", [pytest.param("clip", marks=pytest.mark.slow), "siglip"])
@pytest.mark.parametrize(
    "image_spec, text_spec",
    [(P(), P("data")), (P(None, "model"), P(None, "model"))],
    ids=["only_the_texts_split", "only_the_width_split"],
)
def test_explicit_mesh_with_one_tower_or_only_the_width_split(kind, image_spec, text_spec, x64):
    """The batch split of one tower is followed by the other; a mesh that splits only the
    embedding width gets the single-device loss on whole rows."""
    mesh = jax.make_mesh((2, 4), ("data", "model"), axis_types=(AxisType.Explicit,) * 2)
    image, text, _, _ = _problem(16, seed=12)
    image, text = np.pad(image, ((0, 0), (0, 3))), np.pad(text, ((0, 0), (0, 3)))  # width 8

    def loss(i, t):
        return LOSSES[kind](i, t, 2.0, -1.0)

    want, want_grads = jax.value_and_grad(loss, (0, 1))(image, text)
    with jax.set_mesh(mesh):
        i, t = jax.device_put(image, image_spec), jax.device_put(text, text_spec)
        got, grads = jax.jit(jax.value_and_grad(loss, (0, 1)))(i, t)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-14)


def test_parallel_bad_input_is_named():
    """Outside shard_map, an unknown method, a non-bool flag: clear errors naming the
    argument."""
    image = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match=re.escape("parallel.siglip_loss: `axis_name`='batch'")):
        jaxloss.parallel.siglip_loss(image, image, 1.0, axis_name="batch")
    mesh = _mesh(2)

    def inside(loss, **options):
        def run(i, t):
            return loss(i, t, 1.0, axis_name="batch", **options)[None]

        return jax.shard_map(run, mesh=mesh, in_specs=(P("batch"), P("batch")),
                             out_specs=P("batch"))(image, image)  # fmt: skip

    siglip, clip = jaxloss.parallel.siglip_loss, jaxloss.parallel.clip_loss
    with pytest.raises(ValueError, match="`method` must be 'ring' or 'gather'; got 'shift'"):
        inside(siglip, method="shift")
    with pytest.raises(TypeError, match="`local_loss` must be True or False; got 1"):
        inside(clip, local_loss=1)
    with pytest.raises(ValueError, match="`reduction` must be one of"):
        inside(clip, reduction="batchmean")
