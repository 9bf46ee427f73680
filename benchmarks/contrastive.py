"""CLIP and SigLIP on a batch split over 8 CPU devices: bytes moved by collectives and the
largest array per device (read from the compiled HLO), XLA temp memory per device, and time
against the single-device loss on the global batch, measured side by side.

    python benchmarks/contrastive.py            # B = 8192 pairs (1024 per device), D = 256
    python benchmarks/contrastive.py --quick    # tiny shapes, to check the code runs (CI)

Each step is the loss's value and its gradient with respect to both towers, the scale and the
bias, in float32:

- SigLIP, ring: `jaxloss.siglip_loss` on arrays sharded over an Explicit mesh (the
  bidirectional ring of collective permutes; `jaxloss.parallel.siglip_loss`'s default).
- SigLIP, gather: `jaxloss.parallel.siglip_loss(method='gather')` under shard_map: the texts
  all-gathered, each device's rows against the global batch (the gather-everything way).
- CLIP, local rows: `jaxloss.clip_loss` on the Explicit mesh (`local_loss` with
  `gather_with_grad`): both towers gathered, (B/n, B) logits per device.
- CLIP, whole matrix: `jaxloss.parallel.clip_loss(local_loss=False)`: every device forms the
  (B, B) logits, as open_clip does by default.
- one device: the same loss on unsharded arrays (the (B, B) logits on one device).

The ring's forward moves (n-1)·(B/n)·D values per device (the formula is printed beside the
HLO's count); its gradient walks the ring again. The 8 devices share 2 cores, so the sharded
times show overheads, not speed-ups; the bytes and memory are what carry over to GPU and TPU
meshes.
"""

from __future__ import annotations

import argparse
import re

import jax

try:  # before jax starts its CPU backend (a test process may have started it with 8 already)
    jax.config.update("jax_num_cpu_devices", 8)
except RuntimeError:
    pass

import numpy as np
from jax import lax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

import jaxloss
from jaxloss.parity.hlo import bytes_by_kind, collectives
from jaxloss.parity.timing import (
    default_results_dir,
    interleaved_medians,
    machine,
    write_result,
    xla_temp_bytes,
)

DEVICES = 8


def largest_array(hlo: str) -> tuple[int, ...]:
    """The shape of the largest array any instruction of the per-device program produces."""
    shapes = [
        tuple(int(d) for d in dims.split(",")) for dims in re.findall(r"\w+\[([\d,]+)\]", hlo)
    ]
    return max(shapes, key=lambda s: int(np.prod(s)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 repeats")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out",
        default=default_results_dir(),
        help="folder of contrastive.json (default: per CPU kind)",
    )
    args = parser.parse_args(argv)
    batch, width = (64, 8) if args.quick else (8192, 256)
    repeats = 2 if args.quick else args.repeats
    local = batch // DEVICES
    mesh = jax.make_mesh((DEVICES,), ("batch",), axis_types=(AxisType.Explicit,))
    rng = np.random.default_rng(0)
    image = rng.normal(size=(batch, width)).astype(np.float32)
    text = (image + rng.normal(size=(batch, width))).astype(np.float32)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    scale, bias = np.float32(10.0), np.float32(-10.0)
    rows_spec = P("batch", None)

    def grad_step(loss):
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))

    def parallel(loss, **options):
        def mapped(i, t, s, b):
            return jax.shard_map(
                lambda i, t, s, b: lax.pmean(
                    loss(i, t, s, b, axis_name="batch", **options), "batch"
                ),
                mesh=mesh,
                in_specs=(rows_spec, rows_spec, P(), P()),
                out_specs=P(),
            )(i, t, s, b)

        return mapped

    contenders = {
        "SigLIP, ring": (jaxloss.siglip_loss, "siglip"),
        "SigLIP, gather": (parallel(jaxloss.parallel.siglip_loss, method="gather"), "siglip"),
        "CLIP, local rows": (jaxloss.clip_loss, "clip"),
        "CLIP, whole matrix": (parallel(jaxloss.parallel.clip_loss, local_loss=False), "clip"),
    }
    single = {"siglip": jaxloss.siglip_loss, "clip": jaxloss.clip_loss}
    print(f"{DEVICES} CPU devices on {machine()}")
    print(f"B={batch} pairs ({local} per device), D={width}, float32, value and gradient")
    print(
        f"{'step':<22}{'ms':>9}{'1-device ms':>13}{'ratio':>7}{'temp MiB':>10}"
        f"{'1-device MiB':>14}  {'largest array':<16}collectives per step (per device)"
    )
    one = jax.devices()[0]
    whole = [jax.device_put(a, one) for a in (image, text, scale, bias)]
    rows = []
    split = [jax.device_put(a, NamedSharding(mesh, rows_spec)) for a in (image, text)]
    split += [jax.device_put(a, NamedSharding(mesh, P())) for a in (scale, bias)]

    def runner(step, args):
        return lambda: jax.block_until_ready(step(*args))

    for name, (loss, kind) in contenders.items():
        step, reference = grad_step(loss), grad_step(single[kind])
        medians = interleaved_medians(
            {"sharded": runner(step, split), "one": runner(reference, whole)}, repeats
        )
        hlo = step.lower(*split).compile().as_text()
        forward_hlo = jax.jit(loss).lower(*split).compile().as_text()
        moved = bytes_by_kind(collectives(hlo))
        forward_moved = bytes_by_kind(collectives(forward_hlo))
        temp, one_temp = xla_temp_bytes(step, *split), xla_temp_bytes(reference, *whole)
        row = dict(
            step=name,
            ms=medians["sharded"],
            single_device_ms=medians["one"],
            temp_mib=None if temp is None else temp / 2**20,
            single_device_temp_mib=None if one_temp is None else one_temp / 2**20,
            largest_array=list(largest_array(hlo)),
            collectives=sorted(moved.items()),
            forward_collectives=sorted(forward_moved.items()),
        )
        rows.append(row)
        summary = ", ".join(f"{k} {v / 2**10:.1f} KiB" for k, v in sorted(moved.items()))
        print(
            f"{name:<22}{row['ms']:9.1f}{row['single_device_ms']:13.1f}"
            f"{row['ms'] / row['single_device_ms']:7.2f}{row['temp_mib'] or 0:10.1f}"
            f"{row['single_device_temp_mib'] or 0:14.1f}  "
            f"{tuple(row['largest_array'])!s:<16}{summary}",
            flush=True,
        )
    ring = rows[0]
    formula = (DEVICES - 1) * local * width * 4
    measured = dict(ring["forward_collectives"]).get("collective-permute", 0)
    print(
        f"SigLIP ring forward: (n-1)·(B/n)·D·4 = {formula / 2**10:.1f} KiB per device; "
        f"the HLO's collective permutes {measured / 2**10:.1f} KiB"
    )
    print(
        "ratio = sharded / single-device time; temp = XLA temp memory per device; largest "
        "array = the biggest any instruction of the per-device program produces."
    )
    shape = dict(batch=batch, width=width, devices=DEVICES)
    write_result(
        f"{args.out}/contrastive.json",
        shape=shape,
        rows=rows,
        ring_forward_formula_bytes=formula,
        ring_forward_permute_bytes=measured,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
