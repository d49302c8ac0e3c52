"""Every expectation of the built-in suites, proved with plain torch.

For every target × mode whose expectation is not ``pass`` (every suite file but ``training.py``
and ``references.py``), ``PROOFS`` holds, for each check the expectation names, a concrete input
— the harness's shrunk counterexample, written out — on which torch alone (``atlas_plain``, no
harness internals) shows that failure in that mode's dtype:

- ``finite_forward`` / ``finite_gradients``: a NaN/Inf output or gradient where the float64 value
  on the same rounded inputs is NaN/Inf too or within the dtype's range (a *fail*), or finite but
  beyond the dtype's largest value (a *limit*);
- ``error`` / ``gradient_error``: a normwise error against the same function in float64 above the
  mode's tolerance; for a *limit*, the float64 value is beyond the dtype's range or moves by half
  that error when the inputs move by a thousandth of one eps (a kink the rounding crosses);
- ``finite_state``: a parameter of the optimizer step turns NaN/Inf where the float64 step does not.

The completeness tests collect the suites: every expectation cell has a proof of every check it
names, and every proof belongs to a cell that names its check, so an expectation cannot be added
without its proof.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from atlas_plain import MODES, compute_dtype, evaluate, normwise_error, round_to, shown

from stress.core.strategies import TensorStrategy
from stress.engine.discovery import collect_targets

SUITES = Path(__file__).resolve().parents[1] / "suites"
# the training steps have their own proofs (tests/test_steps.py); references.py compares with
# trusted implementations rather than float64
UNPROVED_FILES = ("training", "references")
FILES = sorted(
    p for p in SUITES.glob("*.py") if not p.name.startswith("_") and p.stem not in UNPROVED_FILES
)
TARGETS: dict[str, Any] = {t.name: t for t in collect_targets([str(p) for p in FILES])}


def T(data: Any) -> torch.Tensor:
    """A literal float tensor (float64, rounded to the mode when the proof runs)."""
    return torch.tensor(data, dtype=torch.float64)


def L(data: Any) -> torch.Tensor:
    return torch.tensor(data, dtype=torch.int64)


def B(data: Any) -> torch.Tensor:
    return torch.tensor(data, dtype=torch.bool)


@dataclass(frozen=True)
class Proof:
    target: str
    mode: str
    check: str
    inputs: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.target}[{self.mode}]:{self.check}"


def P(target: str, mode: str, check: str, /, **inputs: Any) -> Proof:
    return Proof(target, mode, check, inputs)


# fmt: off
PROOFS: list[Proof] = [
    P('losses.cross_entropy', 'fp16', 'finite_forward', input=T([[-10000.0, -10000.0], [10000.0, 10000.0], [10000.0, -10000.0], [-10000.0, 10000.0], [10000.0, -10000.0], [-10000.0, 10000.0], [10000.0, 10000.0], [10000.0, -10000.0], [10000.0, 10000.0]]), target=L([0, 1, 1, 0, 1, 1, 1, 1, 1])),
    P('losses.cross_entropy_label_smoothing', 'fp16', 'finite_forward', input=T([[10000.0, -10000.0, -10000.0, 10000.0, -10000.0, -10000.0]]), target=L([2])),
    P('losses.cross_entropy_ignore_index', 'fp32', 'finite_forward', input=T([[1.5409960746765137]]), target=L([-100])),
    P('losses.cross_entropy_ignore_index', 'fp16', 'finite_forward', input=T([[1.541015625]]), target=L([-100])),
    P('losses.cross_entropy_ignore_index', 'bf16', 'finite_forward', input=T([[1.5390625]]), target=L([-100])),
    P('losses.cross_entropy_ignore_index', 'amp-fp16', 'finite_forward', input=T([[1.5409960746765137]]), target=L([-100])),
    P('losses.cross_entropy_ignore_index', 'amp-bf16', 'finite_forward', input=T([[1.5409960746765137]]), target=L([-100])),
    P('losses.cross_entropy_label_smoothing_ignore_index', 'fp32', 'finite_forward', input=T([[1.5409960746765137]]), target=L([-100])),
    P('losses.cross_entropy_label_smoothing_ignore_index', 'fp16', 'finite_forward', input=T([[1.541015625]]), target=L([-100])),
    P('losses.cross_entropy_label_smoothing_ignore_index', 'bf16', 'finite_forward', input=T([[1.5390625]]), target=L([-100])),
    P('losses.cross_entropy_label_smoothing_ignore_index', 'amp-fp16', 'finite_forward', input=T([[1.5409960746765137]]), target=L([-100])),
    P('losses.cross_entropy_label_smoothing_ignore_index', 'amp-bf16', 'finite_forward', input=T([[1.5409960746765137]]), target=L([-100])),
    P('losses.nll_loss_of_log', 'fp32', 'finite_forward', input=T([[1.0, 0.0]]), target=L([1])),
    P('losses.nll_loss_of_log', 'fp32', 'finite_gradients', input=T([[1.0, 0.0]]), target=L([0])),
    P('losses.nll_loss_of_log', 'fp16', 'finite_forward', input=T([[1.0, 0.0]]), target=L([1])),
    P('losses.nll_loss_of_log', 'fp16', 'finite_gradients', input=T([[1.0, 0.0]]), target=L([0])),
    P('losses.nll_loss_of_log', 'bf16', 'finite_forward', input=T([[1.0, 0.0]]), target=L([1])),
    P('losses.nll_loss_of_log', 'bf16', 'finite_gradients', input=T([[1.0, 0.0]]), target=L([0])),
    P('losses.nll_loss_of_log', 'amp-fp16', 'finite_forward', input=T([[1.0, 0.0]]), target=L([1])),
    P('losses.nll_loss_of_log', 'amp-fp16', 'finite_gradients', input=T([[1.0, 0.0]]), target=L([0])),
    P('losses.nll_loss_of_log', 'amp-bf16', 'finite_forward', input=T([[1.0, 0.0]]), target=L([1])),
    P('losses.nll_loss_of_log', 'amp-bf16', 'finite_gradients', input=T([[1.0, 0.0]]), target=L([0])),
    P('losses.binary_cross_entropy', 'fp32', 'finite_gradients', input=T([[1.0]]), target=T([[1.0]])),
    P('losses.binary_cross_entropy', 'fp16', 'finite_gradients', input=T([[1.0]]), target=T([[1.0]])),
    P('losses.binary_cross_entropy', 'bf16', 'finite_gradients', input=T([[1.0]]), target=T([[1.0]])),
    P('losses.binary_cross_entropy', 'amp-fp16', 'finite_gradients', input=T([[1.0]]), target=T([[1.0]])),
    P('losses.binary_cross_entropy', 'amp-bf16', 'finite_gradients', input=T([[1.0]]), target=T([[1.0]])),
    P('losses.binary_cross_entropy_with_logits', 'fp16', 'error', input=T([[-10000.0]]), target=T([[9.500980377197266e-05]])),
    P('losses.kl_div', 'fp16', 'finite_forward', input=T([[-10000.0, 10000.0, -10000.0, -10000.0], [-10000.0, 10000.0, -10000.0, -7852.0], [-10000.0, 10000.0, -10000.0, -6072.0], [-8728.0, -10000.0, -10000.0, 6192.0], [-10000.0, -10000.0, -10000.0, 10000.0], [-10000.0, 10000.0, 10000.0, 10000.0]]), target=T([[0.156982421875, 0.15283203125, 0.376708984375, 0.3134765625], [0.45068359375, 0.38525390625, 0.140625, 0.0232696533203125], [0.1998291015625, 0.10687255859375, 0.5302734375, 0.1632080078125], [0.22119140625, 0.448974609375, 0.1622314453125, 0.16748046875], [0.174560546875, 0.2421875, 0.5107421875, 0.07257080078125], [0.60888671875, 0.2171630859375, 0.1414794921875, 0.032379150390625]])),
    P('losses.mse_loss', 'fp16', 'finite_forward', input=T([[1.541015625, -0.29345703125]]), target=T([[300.0, -75.125]])),
    P('losses.cosine_embedding_loss', 'fp16', 'error', input1=T([[1.541015625]]), input2=T([[394.5]]), target=L([0])),
    P('losses.cosine_embedding_loss', 'fp16', 'finite_forward', input1=T([[1.541015625]]), input2=T([[0.0]]), target=L([0])),
    P('losses.cosine_embedding_loss', 'fp16', 'finite_gradients', input1=T([[1.541015625]]), input2=T([[394.5]]), target=L([0])),
    P('losses.triplet_margin_loss', 'fp32', 'error', anchor=T([[10000.0]]), positive=T([[1.5409960746765137]]), negative=T([[0.6613521575927734]])),
    P('losses.triplet_margin_loss', 'fp32', 'gradient_error', anchor=T([[0.0, 10000.0, -10000.0, 1.0, -10000.0, 1.0, 0.0, 1.0], [1.0, 10000.0, -1.0, 1.0, -10000.0, -10000.0, 1.0, -10000.0], [10000.0, 1.0, 10000.0, 0.0, -1.0, -10000.0, -10000.0, 1.0], [1.0, -1.0, -1.0, 0.0, 1.0, 1.0, 10000.0, 0.0], [10000.0, 1.0, 0.0, 10000.0, 1.0, 1.0, 10000.0, 0.0], [10000.0, -1.0, -1.0, -1.0, -10000.0, 0.0, 10000.0, 10000.0], [1.0, 10000.0, 1.0, -1.0, 0.0, -1.0, 1.0, -1.0]]), positive=T([[-10000.0, 0.0, 0.0, 1.0, -10000.0, 10000.0, 10000.0, -10000.0], [-1.0, 0.0, 0.0, -10000.0, -10000.0, -10000.0, 10000.0, -1.0], [-1.0, 10000.0, -10000.0, 1.0, 0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0], [-1.0, -1.0, -10000.0, -10000.0, 0.0, -10000.0, 1.0, -10000.0], [-10000.0, 10000.0, 10000.0, 0.0, -10000.0, -10000.0, 1.0, -10000.0], [0.0, -1.0, 10000.0, 0.0, 10000.0, 10000.0, 1.0, 10000.0]]), negative=T([[-1.401298464324817e-45, -1.401298464324817e-45, -0.0, -0.0, 1.401298464324817e-45, 1.401298464324817e-45, -0.0, -2.802596928649634e-45], [0.0, -1.401298464324817e-45, 0.0, 0.0, 0.0, 1.401298464324817e-45, 1.401298464324817e-45, -0.0], [-1.401298464324817e-45, -2.802596928649634e-45, 1.401298464324817e-45, 1.401298464324817e-45, 1.401298464324817e-45, -2.802596928649634e-45, -0.0, 2.802596928649634e-45], [1.401298464324817e-45, -1.401298464324817e-45, -0.0, 0.0, 1.401298464324817e-45, 2.802596928649634e-45, 1.401298464324817e-45, -1.401298464324817e-45], [-1.401298464324817e-45, 0.0, -0.0, 0.0, 0.0, 0.0, 1.401298464324817e-45, 0.0], [0.0, -0.0, -1.401298464324817e-45, -1.401298464324817e-45, 1.401298464324817e-45, 2.802596928649634e-45, 1.401298464324817e-45, -1.401298464324817e-45], [-1.401298464324817e-45, 0.0, -0.0, -0.0, -2.802596928649634e-45, -0.0, 0.0, 1.401298464324817e-45]])),
    P('losses.triplet_margin_loss', 'fp16', 'error', anchor=T([[394.5]]), positive=T([[1.541015625]]), negative=T([[0.61328125]])),
    P('losses.triplet_margin_loss', 'fp16', 'gradient_error', anchor=T([[394.5]]), positive=T([[1.541015625]]), negative=T([[0.386962890625]])),
    P('losses.triplet_margin_loss', 'bf16', 'error', anchor=T([[38.75]]), positive=T([[1.5390625]]), negative=T([[0.66015625]])),
    P('losses.triplet_margin_loss', 'bf16', 'gradient_error', anchor=T([[38.75]]), positive=T([[1.5390625]]), negative=T([[0.392578125]])),
    P('losses.poisson_nll_loss', 'fp16', 'finite_forward', input=T([[12.0, -20.0, -20.0, -20.0]]), target=T([[0.0, 0.0, 0.0, 0.0]])),  # exp(12) is inf, the mean 40689
    P('losses.gaussian_nll_loss', 'fp16', 'finite_forward', input=T([[1.541015625]]), target=T([[394.5]]), var=T([[1.541015625]])),
    P('losses.gaussian_nll_loss', 'fp16', 'finite_gradients', input=T([[1.541015625]]), target=T([[1.541015625]]), var=T([[1.0132789611816406e-06]])),
    P('losses.ctc_loss', 'fp32', 'finite_forward', log_probs=T([[[1.5409960746765137, -0.293428897857666]]]), targets=L([[0, 1]])),
    P('losses.ctc_loss', 'fp16', 'finite_forward', log_probs=T([[[1.541015625, -0.29345703125]]]), targets=L([[0, 1]])),
    P('losses.ctc_loss', 'bf16', 'finite_forward', log_probs=T([[[1.5390625, -0.29296875]]]), targets=L([[0, 1]])),
    P('losses.ctc_loss', 'amp-fp16', 'finite_forward', log_probs=T([[[1.5409960746765137, -0.293428897857666]]]), targets=L([[0, 1]])),
    P('losses.ctc_loss', 'amp-bf16', 'finite_forward', log_probs=T([[[1.5409960746765137, -0.293428897857666]]]), targets=L([[0, 1]])),
    P('losses.multilabel_soft_margin_loss', 'fp16', 'finite_forward', input=T([[10000.0, -10000.0, -10000.0, 10000.0, -10000.0, -10000.0, 10000.0, 10000.0, -10000.0]]), target=L([[0, 1, 1, 0, 1, 1, 1, 1, 1]])),
    P('losses.soft_margin_loss', 'fp32', 'finite_forward', input=T([[10000.0]]), target=L([[0]])),
    P('losses.soft_margin_loss', 'fp16', 'finite_forward', input=T([[-10000.0]]), target=L([[1]])),
    P('losses.soft_margin_loss', 'bf16', 'finite_forward', input=T([[9984.0]]), target=L([[0]])),
    P('losses.soft_margin_loss', 'amp-fp16', 'finite_forward', input=T([[396.09698486328125]]), target=L([[0]])),
    P('losses.soft_margin_loss', 'amp-bf16', 'finite_forward', input=T([[10000.0]]), target=L([[0]])),
    P('normalization.layer_norm', 'fp32', 'error', x=T([[9001.541015625, 8999.70703125, 8997.8212890625]])),
    P('normalization.layer_norm', 'fp32', 'gradient_error', x=T([[9000.6611328125, 9000.2666015625]])),
    P('normalization.layer_norm', 'fp16', 'gradient_error', x=T([[-1.013671875, -0.3720703125], [-0.75146484375, -0.8623046875]])),
    P('normalization.layer_norm', 'bf16', 'gradient_error', x=T([[-1.015625, -0.37109375], [-0.75, -0.86328125]])),
    P('normalization.batch_norm_train', 'fp32', 'error', x=T([[10000.0], [10000.0]])),
    P('normalization.batch_norm_train', 'fp32', 'gradient_error', x=T([[9000.0615234375], [8999.98828125]])),
    P('normalization.batch_norm_train', 'fp16', 'error', x=T([[1.001953125], [0.99951171875]])),
    P('normalization.batch_norm_train', 'fp16', 'gradient_error', x=T([[1.001953125], [0.99951171875]])),
    P('normalization.batch_norm_train', 'bf16', 'error', x=T([[1.015625], [0.99609375]])),
    P('normalization.batch_norm_train', 'bf16', 'gradient_error', x=T([[1.015625], [0.99609375]])),
    P('normalization.group_norm', 'fp32', 'error', x=T([[[9001.541015625, 8999.70703125], [8997.8212890625, 9000.568359375], [8998.9150390625, 8998.6015625], [9000.4033203125, 9000.837890625]]])),
    P('normalization.group_norm', 'fp32', 'gradient_error', x=T([[[2097.153564453125, 2097.151611328125], [2097.14990234375, 2097.152587890625], [2097.15087890625, 2097.150634765625], [2097.15234375, 2097.15283203125]]])),
    P('normalization.group_norm', 'fp16', 'gradient_error', x=T([[[257.5, 255.75], [253.875, 256.5], [254.875, 254.625], [256.5, 256.75]]])),
    P('normalization.group_norm', 'bf16', 'gradient_error', x=T([[[1.015625, 0.99609375], [0.984375, 1.0078125], [0.9921875, 0.98828125], [1.0, 1.0078125]]])),
    P('normalization.instance_norm', 'fp32', 'error', x=T([[[10000.0, 10000.0]]])),
    P('normalization.instance_norm', 'fp32', 'gradient_error', x=T([[[9000.392578125, 8999.7763671875]]])),
    P('normalization.instance_norm', 'fp16', 'error', x=T([[[-1.1259765625, -1.15234375], [-0.25048828125, -0.433837890625], [0.8486328125, 0.69189453125], [-0.31591796875, -2.115234375], [0.322265625, -1.263671875], [0.35009765625, 0.30810546875], [0.11981201171875, 1.2373046875], [1.1171875, -0.247314453125]]])),
    P('normalization.instance_norm', 'fp16', 'gradient_error', x=T([[[-1.013671875, -0.3720703125], [-0.75146484375, -0.8623046875]]])),
    P('normalization.instance_norm', 'bf16', 'error', x=T([[[1.015625, 0.99609375]]])),
    P('normalization.instance_norm', 'bf16', 'gradient_error', x=T([[[-1.015625, -0.37109375], [-0.75, -0.86328125]]])),
    # a constant row: 0 in float64, and any move of the inputs by a thousandth of an eps gives ±0.95
    P('normalization.instance_norm', 'amp-fp16', 'error', x=T([[[10000.0, 10000.0]]])),
    P('normalization.normalize', 'fp16', 'finite_forward', x=T([[0.0]])),
    P('normalization.normalize', 'fp16', 'finite_gradients', x=T([[1.1920928955078125e-07]])),
    P('normalization.normalize', 'fp16', 'gradient_error', x=T([[0.0019397735595703125], [-0.0003693103790283203]])),
    P('normalization.normalize', 'bf16', 'gradient_error', x=T([[0.000392913818359375], [-0.0002231597900390625]])),
    P('normalization.cosine_similarity', 'fp16', 'finite_forward', x=T([[1.541015625]]), y=T([[0.0]])),
    P('normalization.cosine_similarity', 'fp16', 'finite_gradients', x=T([[1.541015625]]), y=T([[1.1920928955078125e-07]])),
    P('normalization.cosine_similarity', 'fp16', 'gradient_error', x=T([[1.5409960746765137, -0.293428897857666]]), y=T([[0.0015409960746765137, -0.000293428897857666]])),  # y = x / 1000: its squared norm 2.5e-6 keeps 5 bits
    P('normalization.cosine_similarity', 'bf16', 'gradient_error', x=T([[1.5390625, -0.29296875]]), y=T([[0.0015411376953125, -0.000293731689453125]])),
    P('normalization.masked_softmax', 'fp32', 'finite_forward', x=T([[1.5409960746765137]]), keep=B([[False]])),
    P('normalization.masked_softmax', 'fp16', 'finite_forward', x=T([[1.541015625]]), keep=B([[False]])),
    P('normalization.masked_softmax', 'bf16', 'finite_forward', x=T([[1.5390625]]), keep=B([[False]])),
    P('normalization.masked_softmax', 'amp-fp16', 'finite_forward', x=T([[1.5409960746765137]]), keep=B([[False]])),
    P('normalization.masked_softmax', 'amp-bf16', 'finite_forward', x=T([[1.5409960746765137]]), keep=B([[False]])),
    P('normalization.logsumexp', 'fp16', 'gradient_error', x=T([[10000.0, 10000.0]])),
    P('normalization.logsumexp', 'bf16', 'gradient_error', x=T([[9984.0, 9984.0]])),
    P('normalization.scaled_dot_product_attention', 'amp-fp16', 'error', q=T([[[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991], [-1.0845223665237427, -1.3985954523086548], [0.40334683656692505, 0.8380263447761536]]]), k=T([[[91.5409927368164, 89.70657348632812], [87.82121276855469, 90.56842803955078], [88.91547393798828, 88.60140228271484], [90.4033432006836, 90.83802795410156]]]), v=T([[[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991], [-1.0845223665237427, -1.3985954523086548], [0.40334683656692505, 0.8380263447761536]]]), keep=B([[True, True, True, True]])),
    P('normalization.scaled_dot_product_attention', 'amp-fp16', 'gradient_error', q=T([[[0.0, 0.0], [-2.1787893772125244, 0.5684312582015991]]]), k=T([[[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991]]]), v=T([[[91.5409927368164, 89.70657348632812], [87.82121276855469, 90.56842803955078]]]), keep=B([[True, True]])),
    P('normalization.scaled_dot_product_attention', 'amp-bf16', 'error', q=T([[[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991]]]), k=T([[[90.6613540649414, 90.26692199707031], [90.06167602539062, 90.6213150024414]]]), v=T([[[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991]]]), keep=B([[True, True]])),
    P('normalization.scaled_dot_product_attention', 'amp-bf16', 'gradient_error', q=T([[[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991]]]), k=T([[[90.6613540649414, 90.26692199707031], [90.06167602539062, 90.6213150024414]]]), v=T([[[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991]]]), keep=B([[True, True]])),
    P('normalization.multihead_attention', 'fp16', 'gradient_error', x=T([[[88.875, 88.875, 89.75, 89.5625, 90.875, 90.6875, 89.6875, 87.875], [90.3125, 88.75, 90.375, 90.3125, 90.125, 91.25, 91.125, 89.75]]]), keep=B([[True, True]])),
    P('normalization.multihead_attention', 'bf16', 'gradient_error', x=T([[[30.875, 30.875, 31.75, 31.625, 32.75, 32.75, 31.625, 29.875], [32.25, 30.75, 32.25, 32.25, 32.0, 33.25, 33.0, 31.75]]]), keep=B([[True, True]])),
    P('normalization.multihead_attention', 'amp-fp16', 'gradient_error', x=T([[[88.87416076660156, 88.84764099121094, 89.74942016601562, 89.56612396240234, 90.84870910644531, 90.69200897216797, 89.68399047851562, 87.88478088378906], [90.32227325439453, 88.73666381835938, 90.34998321533203, 90.30813598632812, 90.11984252929688, 91.23765563964844, 91.11677551269531, 89.75272369384766]]]), keep=B([[True, True]])),
    P('normalization.multihead_attention', 'amp-bf16', 'gradient_error', x=T([[[30.874160766601562, 30.847639083862305, 31.749422073364258, 31.56612205505371, 32.84870910644531, 32.69200897216797, 31.68398666381836, 29.884780883789062], [32.32227325439453, 30.736665725708008, 32.34998321533203, 32.30813217163086, 32.119842529296875, 33.2376594543457, 33.11677551269531, 31.752721786499023]]]), keep=B([[True, True]])),
    P('research.info_nce_naive', 'fp32', 'finite_forward', x=T([[1.0]]), y=T([[1.0]]), temp=0.009999999776482582),
    P('research.info_nce_naive', 'fp16', 'finite_forward', x=T([[1.0]]), y=T([[1.0]]), temp=0.01000213623046875),
    P('research.info_nce_naive', 'bf16', 'finite_forward', x=T([[1.0]]), y=T([[1.0]]), temp=0.010009765625),
    P('research.info_nce_naive', 'bf16', 'gradient_error', x=T([[-1.0, -0.0859375]]), y=T([[1.0, -0.29296875]]), temp=0.05615234375),
    P('research.info_nce_naive', 'amp-fp16', 'finite_forward', x=T([[1.0]]), y=T([[1.0]]), temp=0.009999999776482582),
    P('research.info_nce_naive', 'amp-bf16', 'finite_forward', x=T([[1.0]]), y=T([[1.0]]), temp=0.009999999776482582),
    P('research.soft_nn_alignment_naive', 'fp32', 'finite_forward', x=T([[1.5409960746765137]]), y=T([[-1.8743985891342163]]), temp=0.10000000149011612),
    P('research.soft_nn_alignment_naive', 'fp32', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[-1.605276346206665]]), temp=0.10000000149011612),
    P('research.soft_nn_alignment_naive', 'fp16', 'finite_forward', x=T([[1.541015625, -0.29345703125, -2.0, 0.568359375, -1.0849609375, -1.3984375]]), y=T([[1.001953125, 0.99951171875, 0.998046875, 1.0009765625, 0.9990234375, 0.99853515625]]), temp=1.0),
    P('research.soft_nn_alignment_naive', 'fp16', 'finite_gradients', x=T([[1.541015625, -0.29345703125, -2.0]]), y=T([[1.001953125, 0.99951171875, 0.998046875]]), temp=1.0),
    P('research.soft_nn_alignment_naive', 'bf16', 'finite_forward', x=T([[1.5390625]]), y=T([[-1.6015625]]), temp=0.10009765625),
    P('research.soft_nn_alignment_naive', 'bf16', 'gradient_error', x=T([[0.66015625]]), y=T([[1.5390625]]), temp=0.10009765625),
    P('research.soft_nn_alignment_naive', 'amp-fp16', 'finite_forward', x=T([[1.5409960746765137]]), y=T([[-2.0]]), temp=0.10000000149011612),
    P('research.soft_nn_alignment_naive', 'amp-fp16', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[-1.605276346206665]]), temp=0.10000000149011612),
    P('research.soft_nn_alignment_naive', 'amp-bf16', 'finite_forward', x=T([[1.5409960746765137]]), y=T([[-1.8743985891342163]]), temp=0.10000000149011612),
    P('research.soft_nn_alignment_naive', 'amp-bf16', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[-1.605276346206665]]), temp=0.10000000149011612),
    P('research.soft_nn_alignment_naive', 'amp-bf16', 'gradient_error', x=T([[1.5409960746765137], [-0.293428897857666]]), y=T([[1.012039065361023], [0.9977076053619385]]), temp=0.10000000149011612),
    P('research.soft_dtw_naive', 'fp32', 'error', x=T([[-1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.4338788092136383, 0.8487103581428528, 0.6920091509819031, -0.31601276993751526, -2.1152193546295166, 0.32227492332458496, -1.2633347511291504, 0.34998318552970886, 0.30813392996788025], [0.11984150856733322, 1.237657904624939, 1.1167771816253662, -0.2472781538963318, -1.3526537418365479, -1.6959311962127686, 0.5666506290435791, 0.7935083508491516, 0.5988394618034363, -1.5550950765609741, -0.3413603901863098, 1.85300612449646], [0.750189483165741, -0.5854975581169128, -0.1733967512845993, 0.18347793817520142, 1.3893661499023438, 1.586334228515625, 0.946298360824585, -0.843676745891571, -0.6135830879211426, 0.03159274160861969, -0.4926769733428955, 0.2484147548675537], [0.4396958351135254, 0.11241118609905243, 0.6407923698425293, 0.441156268119812, -0.10230965167284012, 0.7924439907073975, -0.28966769576072693, 0.05250748619437218, 0.5943230390548706, 1.5419425964355469, 0.5073344111442566, -0.5910331606864929], [-0.5692480802536011, 0.9199714064598083, 1.1108161211013794, 1.2898740768432617, -1.4959149360656738, -0.19383712112903595, 0.44551217555999756, 1.3252748250961304, -1.6293259859085083, -0.54974365234375, -0.47983425855636597, -0.4996815323829651]]), y=T([[1.5409960746765137, -0.293428897857666, -2.1787893772125244, 0.5684312582015991, -1.0845223665237427, -1.3985954523086548, 0.40334683656692505, 0.8380263447761536, -0.7192575931549072, -0.40334352850914, -0.5966353416442871, 0.18203648924827576]]), gamma=1.0),
    P('research.soft_dtw_naive', 'fp32', 'finite_forward', x=T([[1.5409960746765137], [-0.293428897857666], [-2.1787893772125244]]), y=T([[10.0]]), gamma=1.0),
    P('research.soft_dtw_naive', 'fp32', 'finite_gradients', x=T([[0.0], [-0.293428897857666]]), y=T([[10.0]]), gamma=1.0),
    P('research.soft_dtw_naive', 'fp16', 'error', x=T([[1.541015625], [-0.29345703125], [-2.1796875], [0.568359375]]), y=T([[1.541015625]]), gamma=1.0),
    P('research.soft_dtw_naive', 'fp16', 'finite_forward', x=T([[1.541015625], [-0.29345703125]]), y=T([[6.13671875]]), gamma=1.0),
    P('research.soft_dtw_naive', 'fp16', 'finite_gradients', x=T([[1.541015625], [-0.29345703125], [-2.1796875], [0.568359375]]), y=T([[1.541015625]]), gamma=1.0),
    P('research.soft_dtw_naive', 'bf16', 'finite_forward', x=T([[1.5390625], [-0.29296875]]), y=T([[0.66015625]]), gamma=0.00099945068359375),
    P('research.soft_dtw_naive', 'bf16', 'gradient_error', x=T([[0.26308342814445496, 1.1021767854690552, 0.08078093826770782, 0.037848491221666336, 0.9447396397590637, -0.23636184632778168, 0.5368472337722778, 0.40821242332458496], [0.26308342814445496, 1.1021767854690552, 0.08078093826770782, 0.037848491221666336, 0.9447396397590637, -0.23636184632778168, 0.5368472337722778, 0.40821242332458496]]), y=T([[0.0] * 8] * 5), gamma=0.149),  # two equal rows against zeros
    P('research.soft_dtw_naive', 'amp-fp16', 'finite_forward', x=T([[1.5409960746765137], [-0.293428897857666]]), y=T([[-10.0]]), gamma=1.0),
    P('research.soft_dtw_naive', 'amp-fp16', 'finite_gradients', x=T([[0.0], [-0.293428897857666]]), y=T([[10.0]]), gamma=1.0),
    P('research.soft_dtw_naive', 'amp-bf16', 'finite_forward', x=T([[-1.605276346206665], [0.23248571157455444]]), y=T([[10.0]]), gamma=1.0),
    P('research.soft_dtw_naive', 'amp-bf16', 'finite_gradients', x=T([[0.39229682087898254], [-0.223564013838768]]), y=T([[10.0]]), gamma=1.0),
    P('research.focal_loss_naive', 'fp32', 'error', logits=T([12.240567207336426]), target=L([0])),
    P('research.focal_loss_naive', 'fp32', 'finite_forward', logits=T([1000.0]), target=L([0])),
    P('research.focal_loss_naive', 'fp16', 'error', logits=T([6.13671875]), target=L([0])),
    P('research.focal_loss_naive', 'fp16', 'finite_forward', logits=T([396.0]), target=L([0])),
    P('research.focal_loss_naive', 'bf16', 'finite_forward', logits=T([1000.0]), target=L([0])),
    P('research.focal_loss_naive', 'bf16', 'error', logits=T([6.1875]), target=L([0])),
    P('research.focal_loss_naive', 'amp-fp16', 'error', logits=T([15.409960746765137]), target=L([0])),
    P('research.focal_loss_naive', 'amp-fp16', 'finite_forward', logits=T([-1000.0]), target=L([1])),
    P('research.focal_loss_naive', 'amp-bf16', 'finite_forward', logits=T([1000.0]), target=L([0])),
    P('research.dice_loss_naive', 'fp32', 'finite_forward', probs=T([[0.0]]), target=L([[0]])),
    P('research.dice_loss_naive', 'fp32', 'finite_gradients', probs=T([[2.802596928649634e-45]]), target=L([[0]])),
    P('research.dice_loss_naive', 'fp16', 'finite_forward', probs=T([[0.0]]), target=L([[0]])),
    P('research.dice_loss_naive', 'fp16', 'finite_gradients', probs=T([[1.1920928955078125e-07]]), target=L([[0]])),
    P('research.dice_loss_naive', 'bf16', 'finite_forward', probs=T([[0.0]]), target=L([[0]])),
    P('research.dice_loss_naive', 'bf16', 'finite_gradients', probs=T([[1.8367099231598242e-40]]), target=L([[0]])),
    P('research.dice_loss_naive', 'amp-fp16', 'finite_forward', probs=T([[0.0]]), target=L([[0]])),
    P('research.dice_loss_naive', 'amp-fp16', 'finite_gradients', probs=T([[2.802596928649634e-45]]), target=L([[0]])),
    P('research.dice_loss_naive', 'amp-bf16', 'finite_forward', probs=T([[0.0]]), target=L([[0]])),
    P('research.dice_loss_naive', 'amp-bf16', 'finite_gradients', probs=T([[1.4054042688252888e-40]]), target=L([[0]])),
    P('research.spectral_loss_naive', 'fp32', 'gradient_error', x=T([[89.67256927490234, 91.30326843261719, 91.53363037109375, 90.1844482421875, 89.17969512939453, 90.07562255859375, 91.3363037109375, 89.8103256225586, 91.29882049560547, 89.20082092285156], [90.51862335205078, 89.76676177978516, 89.18243408203125, 90.2445297241211, 91.0013656616211, 88.83407592773438, 89.37020111083984, 90.70291137695312, 89.1309585571289, 91.0171890258789], [90.43213653564453, 91.13531494140625, 89.7920913696289, 89.72103881835938, 90.68368530273438, 90.34356689453125, 91.27149200439453, 90.43929290771484, 89.62883758544922, 90.18274688720703], [90.27790069580078, 89.71577453613281, 90.21797180175781, 89.65506744384766, 91.72965240478516, 89.33757781982422, 89.01873016357422, 90.77515411376953, 90.61702728271484, 89.70478057861328]]), y=T([[-1.1258398294448853, -1.152360200881958, -0.2505785822868347, -0.4338788092136383, 0.8487103581428528, 0.6920091509819031, -0.31601276993751526, -2.1152193546295166, 0.32227492332458496, -1.2633347511291504], [0.34998318552970886, 0.30813392996788025, 0.11984150856733322, 1.237657904624939, 1.1167771816253662, -0.2472781538963318, -1.3526537418365479, -1.6959311962127686, 0.5666506290435791, 0.7935083508491516], [0.5988394618034363, -1.5550950765609741, -0.3413603901863098, 1.85300612449646, -0.21586325764656067, -0.7425481677055359, 0.5627213716506958, 0.25962740182876587, -0.17396099865436554, -0.678746223449707], [0.9382607340812683, 0.4888698160648346, 1.203223705291748, 0.08453469723463058, -1.2001394033432007, -0.004785737954080105, -0.5180748105049133, -0.30670419335365295, -1.580993890762329, 1.7066433429718018]])),
    P('research.spectral_loss_naive', 'fp16', 'error', x=T([[1.541015625]]), y=T([[0.0]])),
    P('research.spectral_loss_naive', 'fp16', 'gradient_error', x=T([[1.541015625]]), y=T([[0.0]])),
    P('research.spectral_loss_naive', 'fp16', 'finite_forward', x=T([[0.5, -0.25, 1.0, 0.75]]), y=T([[100.0, 100.0, 100.0, 100.0]])),
    P('research.spectral_loss_naive', 'fp16', 'finite_gradients', x=T([[0.5, -0.25, 1.0, 0.75]]), y=T([[100.0, 100.0, 100.0, 100.0]])),
    P('research.spectral_loss_naive', 'bf16', 'error', x=T([[1.5390625, -0.29296875, -2.171875, 0.5703125, -1.0859375, -1.3984375, 0.404296875, 0.83984375, -0.71875, -0.404296875, -0.59765625]]), y=T([[1.015625, 0.99609375, 0.984375, 1.0078125, 0.9921875, 0.98828125, 1.0, 1.0078125, 0.99609375, 0.99609375, 0.99609375]])),
    P('research.spectral_loss_naive', 'bf16', 'gradient_error', x=T([[1.5390625, -0.29296875, -2.171875, 0.5703125, -1.0859375, -1.3984375, 0.404296875, 0.83984375, -0.71875]]), y=T([[1.015625, 0.99609375, 0.984375, 1.0078125, 0.9921875, 0.98828125, 1.0, 1.0078125, 0.99609375]])),
    P('research.spectral_loss_naive', 'amp-fp16', 'error', x=T([[1.5409960746765137]]), y=T([[0.0]])),
    P('research.spectral_loss_naive', 'amp-fp16', 'gradient_error', x=T([[1.5409960746765137]]), y=T([[0.0]])),
    P('research.spectral_loss_naive', 'amp-fp16', 'finite_forward', x=T([[0.5, -0.25, 1.0, 0.75]]), y=T([[100.0, 100.0, 100.0, 100.0]])),
    P('research.spectral_loss_naive', 'amp-fp16', 'finite_gradients', x=T([[0.5, -0.25, 1.0, 0.75]]), y=T([[100.0, 100.0, 100.0, 100.0]])),
    P('research.spectral_loss_naive', 'amp-bf16', 'error', x=T([[1.5409960746765137, -0.293428897857666]]), y=T([[1.012039065361023, 0.9977076053619385]])),
    P('research.spectral_loss_naive', 'amp-bf16', 'gradient_error', x=T([[1.5409960746765137, -0.293428897857666]]), y=T([[1.012039065361023, 0.9977076053619385]])),
    P('research.nmse_naive', 'fp16', 'finite_forward', pred=T([[1.541015625]]), target=T([[394.5]])),
    P('research.distillation_kl_naive', 'fp32', 'finite_forward', student=T([[1.5409960746765137, -0.293428897857666]]), teacher=T([[1000.0, -1000.0]]), temp=1.0),
    P('research.distillation_kl_naive', 'fp16', 'error', student=T([[1.541015625, -0.29345703125]]), teacher=T([[0.80322265625, 0.1748046875]]), temp=10.0),
    P('research.distillation_kl_naive', 'fp16', 'finite_forward', student=T([[1.541015625, -0.29345703125]]), teacher=T([[396.0, -75.4375]]), temp=1.0),
    P('research.distillation_kl_naive', 'bf16', 'error', student=T([[1.5390625, -0.29296875]]), teacher=T([[0.66015625, 0.267578125]]), temp=10.0),
    P('research.distillation_kl_naive', 'bf16', 'finite_forward', student=T([[1.5390625, -0.29296875]]), teacher=T([[1000.0, -1000.0]]), temp=1.0),
    P('research.distillation_kl_naive', 'amp-fp16', 'finite_forward', student=T([[1.5409960746765137, -0.293428897857666]]), teacher=T([[396.09698486328125, -75.42284393310547]]), temp=1.0),
    P('research.distillation_kl_naive', 'amp-fp16', 'finite_gradients', student=T([[100.0, 0.0]]), teacher=T([[1.5409960746765137, -0.293428897857666]]), temp=1.0),
    P('research.distillation_kl_naive', 'amp-bf16', 'finite_forward', student=T([[1.5409960746765137, -0.293428897857666]]), teacher=T([[1000.0, -1000.0]]), temp=1.0),
    P('research.distillation_kl_naive', 'amp-bf16', 'finite_gradients', student=T([[1000.0, -0.293428897857666], [-1000.0, 0.5684312582015991], [-1000.0, -1.3985954523086548]]), teacher=T([[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991], [-1.0845223665237427, -1.3985954523086548]]), temp=10.0),
    P('research.vae_kl_naive', 'fp16', 'finite_forward', mu=T([[100.0, -75.4375]]), logvar=T([[10.0, -50.0]])),
    P('research.vae_kl_naive', 'fp16', 'finite_gradients', mu=T([[1.541015625, -0.29345703125, -2.1796875]]), logvar=T([[10.0, -3.693359375, -27.421875]])),
    P('seeds.gtcc_alignment_naive', 'fp32', 'finite_forward', x=T([[1.5409960746765137]]), y=T([[-10.0]])),
    P('seeds.gtcc_alignment_naive', 'fp32', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[1.5409960746765137]])),
    P('seeds.gtcc_alignment_naive', 'fp16', 'finite_forward', x=T([[1.541015625]]), y=T([[3.87109375]])),
    P('seeds.gtcc_alignment_naive', 'fp16', 'finite_gradients', x=T([[1.541015625]]), y=T([[1.541015625]])),
    P('seeds.gtcc_alignment_naive', 'bf16', 'finite_forward', x=T([[0.66015625]]), y=T([[10.0]])),
    P('seeds.gtcc_alignment_naive', 'bf16', 'finite_gradients', x=T([[1.5390625]]), y=T([[1.5390625]])),
    P('seeds.gtcc_alignment_naive', 'bf16', 'gradient_error', x=T([[1.5390625]]), y=T([[-1.9375]])),
    P('seeds.gtcc_alignment_naive', 'amp-fp16', 'finite_forward', x=T([[1.5409960746765137]]), y=T([[-10.0]])),
    P('seeds.gtcc_alignment_naive', 'amp-fp16', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[1.5409960746765137]])),
    P('seeds.gtcc_alignment_naive', 'amp-bf16', 'finite_forward', x=T([[10.0], [-10.0]]), y=T([[1.5409960746765137]])),
    P('seeds.gtcc_alignment_naive', 'amp-bf16', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[1.5409960746765137]])),
    P('seeds.info_nce_naive', 'fp32', 'finite_forward', x=T([[1.5409960746765137, -0.293428897857666, -2.0]]), y=T([[1.5409960746765137, -0.293428897857666, -2.0]])),
    P('seeds.info_nce_naive', 'fp32', 'finite_gradients', x=T([[-2.0, -2.0]]), y=T([[1.6625, 1.6625]])),  # logit -95: exp is subnormal, 1/sum overflows
    P('seeds.info_nce_naive', 'fp16', 'finite_forward', x=T([[1.0]]), y=T([[1.0]])),
    P('seeds.info_nce_naive', 'fp16', 'finite_gradients', x=T([[1.541015625]]), y=T([[-0.6015625]])),
    P('seeds.info_nce_naive', 'bf16', 'finite_forward', x=T([[1.5390625, -0.29296875, -2.0]]), y=T([[1.5390625, -0.29296875, -2.0]])),
    P('seeds.info_nce_naive', 'bf16', 'gradient_error', x=T([[1.015625]]), y=T([[1.0]])),
    P('seeds.info_nce_naive', 'bf16', 'error', x=T([[1.5409960746765137, -0.293428897857666], [-2.0, 0.5684312582015991]]), y=T([[1.5409960746765137, -0.293428897857666], [1.5409960746765137, -0.293428897857666]])),
    P('seeds.info_nce_naive', 'amp-fp16', 'finite_forward', x=T([[1.0]]), y=T([[1.0]])),
    P('seeds.info_nce_naive', 'amp-fp16', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[-0.6013928055763245]])),
    P('seeds.info_nce_naive', 'amp-bf16', 'finite_forward', x=T([[1.5409960746765137, -0.293428897857666, -2.0]]), y=T([[1.5409960746765137, -0.293428897857666, -2.0]])),
    P('seeds.info_nce_naive', 'amp-bf16', 'gradient_error', x=T([[1.0]]), y=T([[0.04472753778100014]])),
    P('seeds.layer_norm_naive', 'fp32', 'error', x=T([[9001.541015625, 8999.70703125, 8997.8212890625]])),
    P('seeds.layer_norm_naive', 'fp32', 'gradient_error', x=T([[9000.392578125, 8999.7763671875]])),
    P('seeds.layer_norm_naive', 'fp16', 'error', x=T([[10000.0, -10000.0]])),
    P('seeds.layer_norm_naive', 'fp16', 'finite_gradients', x=T([[1.001953125, 0.99951171875, 0.998046875, 1.0009765625, 0.9990234375, 0.99853515625, 1.0, 1.0009765625, 0.99951171875, 0.99951171875]])),
    P('seeds.layer_norm_naive', 'fp16', 'gradient_error', x=T([[-0.11163330078125, -1.1455078125], [1.41015625, 1.365234375]])),
    P('seeds.layer_norm_naive', 'bf16', 'error', x=T([[1.015625, 0.99609375]])),
    P('seeds.layer_norm_naive', 'bf16', 'gradient_error', x=T([[-0.486328125, -0.60546875]])),
    P('seeds.fft_l1_naive', 'fp32', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[1.5409960746765137]])),
    P('seeds.fft_l1_naive', 'fp32', 'gradient_error', x=T([[1.5409960746765137, -0.293428897857666, -2.1787893772125244]]), y=T([[1.5409958362579346, -0.2934289276599884, -2.1787896156311035]])),
    P('seeds.fft_l1_naive', 'fp16', 'finite_forward', x=T([[1.541015625]]), y=T([[396.0]])),
    P('seeds.fft_l1_naive', 'fp16', 'finite_gradients', x=T([[1.541015625]]), y=T([[1.541015625]])),
    P('seeds.fft_l1_naive', 'bf16', 'finite_gradients', x=T([[1.5390625]]), y=T([[1.5390625]])),
    P('seeds.fft_l1_naive', 'bf16', 'gradient_error', x=T([[1.5390625, -0.29296875, -2.171875]]), y=T([[1.53125, -0.294921875, -2.203125]])),
    P('seeds.fft_l1_naive', 'amp-fp16', 'finite_forward', x=T([[1.5409960746765137]]), y=T([[396.09698486328125]])),
    P('seeds.fft_l1_naive', 'amp-fp16', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[1.5409960746765137]])),
    P('seeds.fft_l1_naive', 'amp-fp16', 'gradient_error', x=T([[0.0, 0.0, 0.0]]), y=T([[1.0015048789791763, 0.9997134483419359, 0.9978722759988159]])),
    P('seeds.fft_l1_naive', 'amp-bf16', 'finite_gradients', x=T([[1.5409960746765137]]), y=T([[1.5409960746765137]])),
    P('seeds.fft_l1_naive', 'amp-bf16', 'gradient_error', x=T([[1.5409960746765137, -0.293428897857666, -2.1787893772125244]]), y=T([[1.5289570093154907, -0.2957213222980499, -2.1958112716674805]])),
    P('layers.sdpa_causal', 'fp16', 'gradient_error', q=T([[[[10.0, 10.0], [9.9765625, 10.0]], [[9.9921875, 9.984375], [10.0, 10.0]]]]), k=T([[[[1.541015625, -0.29345703125], [1.541015625, -0.29345703125]], [[-1.0849609375, -1.3984375], [-1.0849609375, -1.3984375]]]]), v=T([[[[10.0, 10.0], [9.9765625, 10.0]], [[9.9921875, 9.984375], [10.0, 10.0]]]])),
    P('layers.sdpa_causal', 'bf16', 'gradient_error', q=T([[[[10.0, 8.6875], [6.8125, 9.5625]], [[7.90625, 7.59375], [9.375, 9.8125]]]]), k=T([[[[-2.015625, 2.015625], [0.058349609375, 0.0654296875]], [[-1.65625, 2.25], [0.94921875, 2.234375]]]]), v=T([[[[10.0, 8.6875], [6.8125, 9.5625]], [[7.90625, 7.59375], [9.375, 9.8125]]]])),
    P('layers.sdpa_causal', 'amp-fp16', 'gradient_error', q=T([[[[9.39229679107666, 8.776435852050781], [8.680500030517578, 7.7949628829956055]], [[10.0, 8.366772651672363], [9.57310676574707, 9.540946960449219]]]]), k=T([[[[9.39229679107666, 8.776435852050781], [8.680500030517578, 7.7949628829956055]], [[10.0, 8.366772651672363], [9.57310676574707, 9.540946960449219]]]]), v=T([[[[9.39229679107666, 8.776435852050781], [8.680500030517578, 7.7949628829956055]], [[10.0, 8.366772651672363], [9.57310676574707, 9.540946960449219]]]])),
    P('layers.sdpa_causal', 'amp-fp16', 'error', q=T([[[[9.215334444213207, -4.1898425943374065], [10.0, 10.0], [4.909847411852336, 10.0], [4.726709842000339, -7.180394984181872]], [[3.4180141924521337, 2.4556452371089037], [10.0, 10.0], [3.5576559431020858, -3.2279596927912846], [2.5391812723425415, -9.968330799353643]]]]), k=T([[[[9.215334444213207, -4.1898425943374065], [10.0, 10.0], [4.909847411852336, 10.0], [4.726709842000339, -7.180394984181872]], [[3.4180141924521337, 2.4556452371089037], [10.0, 10.0], [3.5576559431020858, -3.2279596927912846], [2.5391812723425415, -9.968330799353643]]]]), v=T([[[[-1.0367628007824727, -1.149708421324333], [0.1748474532771765, -1.106910871696223], [1.3709010544066071, 0.14941792678813584], [-1.1082294878846337, 1.366124514993571]], [[0.10476927051925206, -0.4657466184803131], [0.5866291424919315, -0.6582330733777377], [1.4002536983839549, 0.17937385827837807], [0.527364895756749, 1.073894594022184]]]])),
    P('layers.sdpa_causal', 'amp-bf16', 'gradient_error', q=T([[[[7.874160289764404, 7.847640037536621], [8.749421119689941, 8.566121101379395], [9.848710060119629, 9.692008972167969], [8.683987617492676, 6.8847808837890625]], [[9.322275161743164, 7.73666524887085], [9.349983215332031, 9.308134078979492], [9.119841575622559, 10.0], [10.0, 8.752721786499023]]]]), k=T([[[[-1.1258398294448853, -1.152360200881958], [-0.2505785822868347, -0.4338788092136383], [0.8487103581428528, 0.6920091509819031], [-0.31601276993751526, -2.1152193546295166]], [[0.32227492332458496, -1.2633347511291504], [0.34998318552970886, 0.30813392996788025], [0.11984150856733322, 1.237657904624939], [1.1167771816253662, -0.2472781538963318]]]]), v=T([[[[7.874160289764404, 7.847640037536621], [8.749421119689941, 8.566121101379395], [9.848710060119629, 9.692008972167969], [8.683987617492676, 6.8847808837890625]], [[9.322275161743164, 7.73666524887085], [9.349983215332031, 9.308134078979492], [9.119841575622559, 10.0], [10.0, 8.752721786499023]]]])),
    P('layers.sdpa_padding', 'fp16', 'gradient_error', q=T([[[[1.541015625, -0.29345703125], [-2.1796875, 0.568359375]], [[-1.0849609375, -1.3984375], [0.4033203125, 0.837890625]]]]), k=T([[[[10.0, -0.29345703125], [-10.0, 0.568359375]], [[-10.0, -1.3984375], [10.0, 0.837890625]]]]), v=T([[[[10.0, -0.29345703125], [-10.0, 0.568359375]], [[-10.0, -1.3984375], [10.0, 0.837890625]]]]), keep=B([[True, True]])),
    P('layers.sdpa_padding', 'bf16', 'gradient_error', q=T([[[[10.0, 0.267578125], [10.0, 0.62109375]], [[-10.0, -0.166015625], [-10.0, 0.380859375]]]]), k=T([[[[10.0, 0.267578125], [10.0, 0.62109375]], [[-10.0, -0.166015625], [-10.0, 0.380859375]]]]), v=T([[[[10.0, -0.29296875], [-10.0, 0.5703125]], [[-10.0, -1.3984375], [10.0, 0.83984375]]]]), keep=B([[True, True]])),
    P('layers.sdpa_padding', 'amp-fp16', 'gradient_error', q=T([[[[1.5409960746765137, -0.293428897857666], [-2.1787893772125244, 0.5684312582015991]], [[-1.0845223665237427, -1.3985954523086548], [0.40334683656692505, 0.8380263447761536]]]]), k=T([[[[10.0, -0.293428897857666], [-10.0, 0.5684312582015991]], [[-10.0, -1.3985954523086548], [10.0, 0.8380263447761536]]]]), v=T([[[[10.0, -0.293428897857666], [-10.0, 0.5684312582015991]], [[-10.0, -1.3985954523086548], [10.0, 0.8380263447761536]]]]), keep=B([[True, True]])),
    P('layers.sdpa_causal', 'amp-bf16', 'error', q=T([[[[8.7575386008997, 5.163369421891132], [10.0, -4.7572357418372375], [5.61386258982707, -8.031920428821783]], [[-3.0932094663911016, -7.036207122101304], [2.3259898060303517, -5.028370600069411], [1.7504581529446204, -6.304602398752643]]]]), k=T([[[[8.7575386008997, 5.163369421891132], [10.0, -4.7572357418372375], [5.61386258982707, -8.031920428821783]], [[-3.0932094663911016, -7.036207122101304], [2.3259898060303517, -5.028370600069411], [1.7504581529446204, -6.304602398752643]]]]), v=T([[[[-2.322649080893553, -1.799590924435384], [0.0020899288414858814, 1.1136499388262548], [-0.1058115533062951, -2.3058082743755484]], [[1.1483757182852496, -1.1270959767442306], [0.022473326879406706, 1.8913416423466443], [0.07391619463008534, -1.1789842733413984]]]])),
    P('layers.sdpa_padding', 'amp-bf16', 'error', q=T([[[[0.2096098781912463, -10.0], [0.2474818544909246, -1.4656924811210628]], [[6.9175369726882305, -10.0], [8.15958369216447, -1.2182043811997576]]]]), k=T([[[[0.2096098781912463, -10.0], [0.2474818544909246, -1.4656924811210628]], [[6.9175369726882305, -10.0], [8.15958369216447, -1.2182043811997576]]]]), v=T([[[[-0.9510569978711565, 0.12098621338853162], [-0.02216185830785164, 1.484229844315577]], [[0.4328867438016794, -1.1805008118653038], [1.1875272553223473, 0.4738839463639607]]]]), keep=B([[True, True]])),
    P('layers.sdpa_padding', 'amp-bf16', 'gradient_error', q=T([[[[-8.829958592167738, -1.4636611641543997], [-8.232561004103353, 0.21322462589629093], [-6.424350007569249, 10.0], [-1.0226790737274802, -3.1507771428805285]], [[4.394093043814793, -6.207561305924161], [10.0, -4.4960224138789915], [3.8653661041763376, 7.030146905859498], [2.3753543440403457, 2.7810378827156965]]]]), k=T([[[[-8.829958592167738, -1.4636611641543997], [-8.232561004103353, 0.21322462589629093], [-6.424350007569249, 10.0], [-1.0226790737274802, -3.1507771428805285]], [[4.394093043814793, -6.207561305924161], [10.0, -4.4960224138789915], [3.8653661041763376, 7.030146905859498], [2.3753543440403457, 2.7810378827156965]]]]), v=T([[[[-0.4034477605463679, 0.5333050818454267], [1.5451701447719515, -0.6280035687940302], [0.23070887124143621, 0.6623344782440984], [0.9104682024475257, -0.4760815937800715]], [[0.06159405809734637, -0.7418455816760297], [-0.3025465660640957, 0.1715674400563285], [0.9791100569397002, 0.4231477356675791], [1.685152065253091, 0.48637582951192987]]]]), keep=B([[True, True, True, False]])),
    P('layers.sdpa_padding', 'amp-fp16', 'error', q=T([[[[-0.7546194660081728, -1.1608282002964534], [-10.0, -3.8797585443040576], [7.452288802668922, 2.9052940842916315]], [[-3.1739994378457665, 8.261506928406714], [-0.9671512361439992, 8.418076483739544], [10.0, 10.0]]]]), k=T([[[[-0.7546194660081728, -1.1608282002964534], [-10.0, -3.8797585443040576], [7.452288802668922, 2.9052940842916315]], [[-3.1739994378457665, 8.261506928406714], [-0.9671512361439992, 8.418076483739544], [10.0, 10.0]]]]), v=T([[[[0.5613296672987906, -0.08496654937516704], [0.23835874581355818, -0.12330553254077897], [2.1465574701290873, 1.777635803650837]], [[0.6879914932467154, 0.09363624162640416], [-1.294093637457287, -0.6555647374440857], [0.2313403620652787, -1.0587305688279298]]]]), keep=B([[True, True, False]])),
    P('layers.transformer_encoder_layer', 'fp16', 'gradient_error', x=T([[[0.0, -1.0, -10.0, 10.0, 1.0, -1.0, -1.0, -10.0, 1.0, -1.0, -1.0, 0.0, 10.0, -1.0, 1.0, 10.0], [-10.0, -10.0, 1.0, 0.0, 1.0, 0.0, 0.0, -10.0, -10.0, -10.0, 1.0, -1.0, 10.0, -1.0, -1.0, -10.0], [0.0, 10.0, 10.0, 1.0, 10.0, 1.0, 10.0, 1.0, 10.0, 1.0, -10.0, 1.0, 0.0, 1.0, -10.0, -1.0]]]), keep=B([[True, True, True]])),
    P('layers.transformer_encoder_layer', 'bf16', 'gradient_error', x=T([[[0.9921875, 0.9921875, 0.99609375, 0.99609375, 1.0078125, 1.0078125, 0.99609375, 0.984375, 1.0, 0.98828125, 1.0, 1.0, 1.0, 1.0078125, 1.0078125, 1.0]]]), keep=B([[False]])),
    P('layers.transformer_encoder_layer', 'amp-fp16', 'gradient_error', x=T([[[7.474404335021973, 8.249768257141113, 8.34601879119873, 7.390515327453613, 8.899832725524902, 8.3908109664917, 8.020227432250977, 7.390903472900391, 8.28785514831543, 9.303722381591797, 8.222685813903809, 8.748544692993164, 8.777729034423828, 10.0, 9.228425025939941, 9.467635154724121], [8.303027153015137, 7.83923864364624, 9.699542045593262, 9.199081420898438, 9.865692138671875, 9.244403839111328, 8.337088584899902, 9.807308197021484, 10.0, 8.824064254760742, 6.75444221496582, 7.553542137145996, 9.061155319213867, 8.382255554199219, 8.201930046081543, 8.868376731872559], [10.0, 8.927867889404297, 9.157770156860352, 8.226545333862305, 9.199056625366211, 9.045702934265137, 9.15295696258545, 8.524321556091309, 8.8889799118042, 9.29273509979248, 8.842154502868652, 8.971212387084961, 10.0, 7.962661266326904, 10.0, 8.370152473449707]]]), keep=B([[True, True, True]])),
    P('layers.transformer_encoder_layer', 'amp-bf16', 'gradient_error', x=T([[[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [-1.3526537418365479, -1.6959311962127686, 0.5666506290435791, 0.7935083508491516, 0.5988394618034363, -1.5550950765609741, -0.3413603901863098, 1.85300612449646, 0.750189483165741, -0.5854975581169128, -0.1733967512845993, 0.18347793817520142, 1.3893661499023438, 1.586334228515625, 0.946298360824585, -0.843676745891571]]]), keep=B([[True, True]])),
    P('layers.gumbel_softmax', 'fp16', 'error', logits=T([[-30.0, -30.0, -30.0, -30.0], [30.0, 30.0, -30.0, -30.0], [30.0, -30.0, 30.0, 30.0], [30.0, 30.0, 30.0, -30.0]]), noise=T([[0.01000213623046875, 0.01000213623046875, 0.01000213623046875, 0.01000213623046875], [0.8486328125, 0.69189453125, 0.01000213623046875, 0.01000213623046875], [0.322265625, 0.01000213623046875, 0.35009765625, 0.30810546875], [0.11981201171875, 1.2373046875, 1.1171875, 0.01000213623046875]]), tau=0.0999755859375),
    P('layers.gumbel_softmax', 'fp16', 'gradient_error', logits=T([[0.6611328125, 0.266845703125, 0.061676025390625]]), noise=T([[1.541015625, 0.01000213623046875, 0.01000213623046875]]), tau=0.0999755859375),
    P('layers.gumbel_softmax', 'bf16', 'error', logits=T([[1.015625, 0.99609375, 0.984375]]), noise=T([[1.5390625, 0.010009765625, 0.010009765625]]), tau=0.10009765625),
    P('layers.gumbel_softmax', 'bf16', 'gradient_error', logits=T([[0.66015625, 0.267578125, 0.061767578125]]), noise=T([[1.5390625, 0.010009765625, 0.010009765625]]), tau=0.10009765625),
]
# fmt: on


@dataclass(frozen=True)
class StepProof:
    """One plain optimizer step (``loss.backward(); optimizer.step()``) of a step target's model,
    built after ``torch.manual_seed(0)`` in the mode's dtype, on a concrete batch."""

    target: str
    mode: str
    check: str
    batch: dict[str, Any]
    steps: int = 1

    def __str__(self) -> str:
        return f"{self.target}[{self.mode}]:{self.check}"


STEP_PROOFS: list[StepProof] = [
    # a zero input: the first layer's gradient is exactly 0, so Adam's second moment is 0 and
    # eps = 1e-8 is 0 in float16: the update is 0/0
    StepProof("optimizers.adam_step", "fp16", "finite_state", dict(x=T([[0.0] * 8]), y=L([0]))),
    StepProof("optimizers.adamw_step", "fp16", "finite_state", dict(x=T([[0.0] * 8]), y=L([0]))),
]


# ------------------------------------------------------------------------- completeness


def expectation_cells() -> list[tuple[str, str, Any]]:
    """(target, mode, expectation) of every non-pass expectation that applies on the CPU."""
    cells = []
    for name, target in TARGETS.items():
        for key, expect in target.expect.items():
            device, _, mode = key.rpartition(":")
            if device in ("", "cpu") and expect.kind != "pass":
                cells.append((name, mode, expect))
    return cells


def _all_proofs() -> list[Proof | StepProof]:
    return [*PROOFS, *STEP_PROOFS]


def _proved() -> set[tuple[str, str, str]]:
    return {(p.target, p.mode, p.check) for p in _all_proofs()}


def test_every_expectation_names_its_checks() -> None:
    vague = [f"{name}[{mode}]" for name, mode, e in expectation_cells() if e.checks is None]
    assert not vague, f"expectations must name the checks that fail: {vague}"


def test_every_expectation_cell_has_a_proof_of_each_check_it_names() -> None:
    proved = _proved()
    missing = [
        f"{name}[{mode}]:{check}"
        for name, mode, e in expectation_cells()
        for check in sorted(e.checks or ())
        if (name, mode, check) not in proved
    ]
    assert not missing, f"expectations without a proof: {missing}"
    assert len(expectation_cells()) >= 100


def test_every_proof_belongs_to_a_cell_that_names_its_check() -> None:
    cells = {(name, mode): e for name, mode, e in expectation_cells()}
    for proof in _all_proofs():
        assert proof.target in TARGETS, f"{proof}: no such target"
        e = cells.get((proof.target, proof.mode))
        assert e is not None, f"{proof}: the target expects to pass in {proof.mode}"
        assert e.covers(proof.check), f"{proof}: the expectation is {e}"


def test_proof_inputs_lie_in_the_declared_domain() -> None:
    for proof in PROOFS:
        target = TARGETS[proof.target]
        for name, value in proof.inputs.items():
            strategy = target.arguments[name]
            if isinstance(strategy, TensorStrategy) and value.is_floating_point():
                finite = value[torch.isfinite(value)]
                if strategy.min_value is not None:
                    assert bool((finite >= strategy.min_value).all()), (
                        f"{proof}: {name} below its domain"
                    )
                if strategy.max_value is not None:
                    assert bool((finite <= strategy.max_value).all()), (
                        f"{proof}: {name} above its domain"
                    )


# ------------------------------------------------------------------------- the proofs


def _moved(target: Any, values: dict[str, Any], mode: str, sign: int) -> dict[str, Any]:
    """The inputs in float64, moved by a thousandth of one eps of the mode's dtype (relative to
    each element plus the argument's largest element, with fixed random signs per argument),
    inside their declared domain: how the harness tells a kink from a formula that could do better."""
    facts = torch.finfo(compute_dtype(mode))
    moved: dict[str, Any] = {}
    for name, x in values.items():
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel():
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            signs = torch.randint(2, x.shape, generator=g).double().mul_(2).sub_(1) * sign
            x = x + signs * (1e-3 * facts.eps * (x.abs() + x.abs().max()) + 1e-3 * facts.tiny)
            a = target.arguments.get(name)
            if isinstance(a, TensorStrategy):
                x = x.clamp(a.min_value, a.max_value)
        moved[name] = x
    return moved


def _steep(target: Any, proof: Proof, error: float) -> bool:
    storage, _ = MODES[proof.mode]
    rounded = {k: round_to(round_to(v, storage), torch.float64) for k, v in proof.inputs.items()}
    base = evaluate(target.fn, rounded, "fp32", target.options.wrt)  # float64 reference of it
    for sign in (1, -1):
        moved = evaluate(
            target.fn, _moved(target, rounded, proof.mode, sign), "fp32", target.options.wrt
        )
        if normwise_error(moved.ref_output, base.ref_output) >= 0.5 * error:
            return True
    return False


@pytest.mark.parametrize("proof", PROOFS, ids=str)
def test_plain_torch_shows_the_expected_failure(proof: Proof) -> None:
    target = TARGETS[proof.target]
    expect = target.expect.get(proof.mode) or target.expect[f"cpu:{proof.mode}"]
    ev = evaluate(target.fn, proof.inputs, proof.mode, target.options.wrt)
    found = shown(ev)
    assert proof.check in found, f"{proof} shows {found}: {ev.summary()}"
    if expect.kind != "limit":
        assert found[proof.check] == "fail", f"{proof} is a representability limit: {ev.summary()}"
    elif found[proof.check] != "limit":
        assert proof.check == "error" and _steep(target, proof, output_error_of(ev)), (
            f"{proof} is neither beyond the dtype's range nor at a kink: {ev.summary()}"
        )


def output_error_of(ev: Any) -> float:
    return normwise_error(ev.output, ev.ref_output)


def _step(target: Any, batch: dict[str, Any], dtype: torch.dtype, steps: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = target.model().to(dtype)
    optimizer = target.optimizer(model.parameters())
    values = {k: round_to(v, dtype) for k, v in batch.items()}
    for _ in range(steps):
        target.loss(model, values).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model


@pytest.mark.parametrize("proof", STEP_PROOFS, ids=str)
def test_plain_torch_shows_the_expected_step_failure(proof: StepProof) -> None:
    assert proof.check == "finite_state"
    target = TARGETS[proof.target]
    storage, _ = MODES[proof.mode]
    rounded = {k: round_to(v, storage) for k, v in proof.batch.items()}
    in_mode = _step(target, rounded, storage, proof.steps)
    in_float64 = _step(target, rounded, torch.float64, proof.steps)
    bad = [n for n, p in in_mode.named_parameters() if not bool(torch.isfinite(p).all())]
    assert bad, f"{proof}: every parameter stayed finite"
    assert all(bool(torch.isfinite(p).all()) for p in in_float64.parameters()), (
        f"{proof}: float64 fails too"
    )
