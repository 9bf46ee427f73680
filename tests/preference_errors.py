"""The worst errors of jaxloss.dpo_loss against its references, as docs/preference.md lists
them: TRL 1.16's formulas (float64, every loss type and f-divergence, 5 draws) and Liger-Kernel
0.8.5 end to end from hidden states (float64 and float32, with average_log_prob and the NLL
term on and off), and CPO, SimPO and ORPO against Liger end to end:

    .venv/bin/python tests/preference_errors.py
"""

import itertools

import jax
import numpy as np

import jaxloss


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    import test_preference as cases

    trl: dict[str, float] = {}
    for (loss_type, f_divergence), seed in itertools.product(cases.CASES, range(5)):
        p_c, p_r, ref_c, ref_r, n_c, n_r = cases._pairs(seed)
        eps = cases._options(loss_type)["label_smoothing"]
        got = jaxloss.dpo_loss(
            p_c, p_r, ref_c, ref_r, beta=0.3, loss_type=loss_type, f_divergence=f_divergence,
            alpha_divergence_coef=0.3, chosen_lengths=n_c, rejected_lengths=n_r,
            label_smoothing=eps,
        ).loss  # fmt: skip
        want = cases._trl_dpo(p_c, p_r, ref_c, ref_r, n_c, n_r, [loss_type], [1.0], 0.3, eps,
                              f_divergence, 0.3)  # fmt: skip
        trl[loss_type] = max(trl.get(loss_type, 0.0), abs(float(got) - want) / abs(want))
    print("TRL 1.16 formulas, float64, relative error of the loss:")
    for loss_type, error in trl.items():
        print(f"  {loss_type:>14} {error:.1e}")
    print("Liger-Kernel 0.8.5 end to end: relative error of the loss / of the gradients")
    for loss_type in cases.LIGER_TYPES:
        row = []
        for dtype in ("float64", "float32"):
            value = grads = 0.0
            for average, nll in itertools.product((False, True), repeat=2):
                pairs = cases.liger_dpo_pairs(loss_type, dtype, average, nll, True)
                ours, theirs = pairs["loss"]
                value = max(value, float(abs(ours - theirs) / abs(theirs)))
                for name in ("dx", "dw", "db"):
                    ours, theirs = pairs[name]
                    grads = max(grads, float(np.abs(ours - theirs).max() / np.abs(theirs).max()))
            row.append(f"{dtype} {value:.1e} / {grads:.1e}")
        print(f"  {loss_type:>14} " + "   ".join(row))
    print("CPO, SimPO and ORPO end to end against Liger: loss / gradients")
    for name, dtype, options in cases.PAIRED_LIGER:
        pairs = cases.paired_liger_pairs(name, dtype, options)
        ours, theirs = pairs["loss"]
        value = float(abs(ours - theirs) / abs(theirs))
        grads = max(
            float(np.abs(pairs[k][0] - pairs[k][1]).max() / np.abs(pairs[k][1]).max())
            for k in ("dx", "dw", "db")
        )
        print(f"  {name:>6} {dtype} {options} {value:.1e} / {grads:.1e}")


if __name__ == "__main__":
    main()
