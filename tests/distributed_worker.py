"""One process of tests/test_distributed.py: `python distributed_worker.py PORT RANK OUT CASE...`.

Two such processes, 4 CPU devices each, join over localhost with jax.distributed (gloo CPU
collectives) into one (2, 4) data x model mesh of 8 devices. Each computes the fused
linear cross-entropy, the head's log-probabilities and entropies, the fused distillation
loss, DPO and GRPO on the fused head, and CLIP and SigLIP, with their gradients, on arrays
sharded over that mesh (tokens or sequences over 'data', the heads' vocabulary over 'model',
the contrastive pairs over both) and the same on one device of its own, and writes the
largest differences to OUT as JSON.
"""

import json
import sys


def main(port: int, rank: int, out: str, cases: list[str]) -> None:
    import jax

    jax.config.update("jax_num_cpu_devices", 4)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=rank)
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxloss

    assert jax.device_count() == 8 and jax.local_device_count() == 4, jax.devices()
    rng = np.random.default_rng(0)  # the same draw in both processes
    x = rng.normal(size=(32, 8)).astype(np.float32)
    w = rng.normal(size=(16, 8)).astype(np.float32)
    bias = rng.normal(size=16).astype(np.float32)
    labels = rng.integers(0, 16, size=32)
    labels[:10] = -100  # the first data shard has fewer counted tokens

    mesh = jax.make_mesh((2, 4), ("data", "model"))

    def sharded(array, spec):
        sharding = NamedSharding(mesh, spec)
        return jax.make_array_from_callback(array.shape, sharding, lambda index: array[index])

    x_teacher = rng.normal(size=(32, 6)).astype(np.float32)
    w_teacher = rng.normal(size=(16, 6)).astype(np.float32)
    cotangent = rng.normal(size=32).astype(np.float32)

    # Each case: a scalar of (x, w, bias, labels, the teacher's x and w), differentiated with
    # respect to the student head's (x, w, bias).
    def cross_entropy(x, w, bias, y, x_t, w_t):
        return jaxloss.linear_cross_entropy(
            x, w, y, bias=bias, label_smoothing=0.1, z_loss=1e-3, chunk_size=8
        )

    def log_probs(x, w, bias, y, x_t, w_t):
        stats = jaxloss.linear_log_probs(
            x, w, y, bias=bias, temperature=0.9, with_entropy=True, chunk_size=8
        )
        return jnp.sum(stats.log_probs * cotangent) + jnp.sum(stats.entropy)

    def distillation(x, w, bias, y, x_t, w_t):
        return jaxloss.linear_distillation_loss(
            x, w, x_t, w_t, y, bias_student=bias, beta=0.3, weight_hard=0.5, chunk_size=8
        )

    # Sequences for DPO and GRPO: 8 rows of 6 tokens (chosen and rejected rows alternate, so
    # each data shard holds whole pairs); the reference head is the teacher's slot.
    x_seq = rng.normal(size=(8, 6, 8)).astype(np.float32)
    ref_x_seq = (x_seq + 0.2 * rng.normal(size=x_seq.shape)).astype(np.float32)
    ref_w = (w + 0.1 * rng.normal(size=w.shape)).astype(np.float32)
    y_seq = rng.integers(0, 16, size=(8, 6))
    y_seq[:, :2] = -100  # the prompts
    mask_seq = y_seq != -100
    old_seq = rng.normal(size=(8, 6)).astype(np.float32) * 0.1 - 2.8
    advantages = rng.normal(size=8).astype(np.float32)

    def dpo(x, w, bias, y, ref_x, ref_w):
        def sums(x, w, b):
            log_probs = jaxloss.linear_log_probs(x, w, y, bias=b, chunk_size=8)
            return jaxloss.sequence_sums(log_probs, where=y != -100)

        policy, counts = sums(x, w, bias)
        reference, _ = sums(ref_x, ref_w, bias)
        return jaxloss.dpo_loss(
            policy[0::2], policy[1::2], reference[0::2], reference[1::2], beta=0.2,
            loss_type=("sigmoid", "sft"), chosen_lengths=counts[0::2],
            rejected_lengths=counts[1::2],
        ).loss  # fmt: skip

    def grpo(x, w, bias, y, ref_x, ref_w):
        ids = jnp.where(y == -100, 0, y)
        stats = jaxloss.linear_log_probs(x, w, ids, bias=bias, with_entropy=True, chunk_size=8)
        reference = jaxloss.linear_log_probs(ref_x, ref_w, ids, bias=bias, chunk_size=8)
        return jaxloss.policy_loss(
            stats.log_probs, advantages, mask_seq, old_seq, reference, loss_type="dapo",
            beta=0.04, entropies=stats.entropy, top_entropy_quantile=0.5,
        ).loss  # fmt: skip

    # CLIP and SigLIP on 32 pairs split over all 8 devices of both processes (SigLIP's ring
    # crosses the process boundary), with groups and padding; differentiated with respect to
    # both towers and the scale.
    image, text = x, (x + rng.normal(size=x.shape)).astype(np.float32)
    groups = rng.integers(0, 12, size=32)
    valid = rng.uniform(size=32) > 0.2

    def contrastive(image, text, scale, groups, valid, bias):
        options = dict(group_ids=groups, where=valid, normalize=True)
        siglip = jaxloss.siglip_loss(image, text, scale, bias, **options)
        return siglip + jaxloss.clip_loss(image, text, scale, **options)

    specs = (P("data"), P("model"), P("model"), P("data"), P("data"), P("model"))
    token_arrays = (x, w, bias, labels, x_teacher, w_teacher)
    sequence_arrays = (x_seq, w, bias, y_seq, ref_x_seq, ref_w)
    batch = P(("data", "model"))
    pair_specs = (batch, batch, P(), batch, batch, P())
    pair_arrays = (image, text, np.float32(4.0), groups, valid, np.float32(-2.0))
    local = jax.local_devices()[0]
    result = {"rank": rank}
    every_case = [
        (cross_entropy, token_arrays, specs),
        (log_probs, token_arrays, specs),
        (distillation, token_arrays, specs),
        (dpo, sequence_arrays, specs),
        (grpo, sequence_arrays, specs),
        (contrastive, pair_arrays, pair_specs),
    ]
    for case, whole, case_specs in every_case:
        if case.__name__ not in cases:
            continue
        args = [sharded(np.asarray(a), spec) for a, spec in zip(whole, case_specs)]
        on_one = [jax.device_put(a, local) for a in whole]
        value, grads = jax.jit(jax.value_and_grad(case, argnums=(0, 1, 2)))(*args)
        value = float(value.addressable_data(0))  # replicated: every device holds it
        grads = [np.asarray(multihost_utils.process_allgather(g, tiled=True)) for g in grads]
        expected, expected_grads = jax.value_and_grad(case, argnums=(0, 1, 2))(*on_one)
        result[case.__name__] = {
            "value": abs(value - float(expected)) / abs(float(expected)),
            "grads": [
                float(np.max(np.abs(g - np.asarray(e))) / np.max(np.abs(np.asarray(e))))
                for g, e in zip(grads, expected_grads)
            ],
        }
    with open(out, "w") as handle:
        json.dump(result, handle)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:])
