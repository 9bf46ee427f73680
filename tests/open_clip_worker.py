"""One rank of open_clip's distributed losses for tests/test_contrastive_sharded.py:
`python open_clip_worker.py PORT RANK WORLD IN.npz OUT.npz`.

WORLD such processes join a torch.distributed gloo group over localhost. Each takes its rows
of the global batch in IN.npz (float64 ``image``, ``text``, ``scale``, ``bias``) and, for
every setting of ``ClipLoss`` (``local_loss`` x ``gather_with_grad``) and every
``dist_impl`` of ``SigLipLoss``, writes its per-rank loss and the gradients that its
backward leaves on its own rows, the scale and the bias to OUT.npz.
"""

import importlib.util
import os
import sys
from pathlib import Path


def main(port: int, rank: int, world: int, inputs: str, out: str) -> None:
    import numpy as np
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    # references.py alone, by path: importing the jaxloss package would start jax in each of
    # the processes for nothing.
    path = Path(__file__).parents[1] / "jaxloss" / "parity" / "references.py"
    spec = importlib.util.spec_from_file_location("open_clip_references", path)
    assert spec is not None and spec.loader is not None
    references = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(references)
    losses = references.open_clip_losses()
    data = np.load(inputs)
    rows = data["image"].shape[0] // world
    own = slice(rank * rows, (rank + 1) * rows)
    settings = {
        f"clip-local{int(local)}-grad{int(grad)}": (
            losses.ClipLoss, dict(local_loss=local, gather_with_grad=grad)
        )
        for local in (False, True)
        for grad in (False, True)
    }  # fmt: skip
    for impl in ("bidir", "shift", "reduce", "gather"):
        settings[f"siglip-{impl}"] = (losses.SigLipLoss, dict(dist_impl=impl))
    results = {}
    for name, (loss_class, options) in settings.items():
        image = torch.tensor(data["image"][own], requires_grad=True)
        text = torch.tensor(data["text"][own], requires_grad=True)
        scale = torch.tensor(data["scale"], requires_grad=True)
        bias = torch.tensor(data["bias"], requires_grad=True)
        loss = loss_class(rank=rank, world_size=world, **options)(image, text, scale, bias)
        loss.backward()
        results[f"{name}/loss"] = loss.detach().numpy()
        for arg, tensor in (("image", image), ("text", text), ("scale", scale), ("bias", bias)):
            grad = tensor.grad
            results[f"{name}/{arg}"] = np.zeros(tensor.shape) if grad is None else grad.numpy()
    np.savez(out, **results)
    dist.barrier()  # no rank tears the group down while another still exchanges
    dist.destroy_process_group()


if __name__ == "__main__":
    port, rank, world = (int(a) for a in sys.argv[1:4])
    main(port, rank, world, sys.argv[4], sys.argv[5])
    # Leave without the interpreter's teardown: gloo's worker threads can still hold work
    # objects then, and freeing them aborted a rank now and then ("terminate called without
    # an active exception", exit -6, once in a CI run) after its results were written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
