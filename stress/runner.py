"""The Hypothesis engine: targets × modes → results and findings.

For each target and mode, one Hypothesis search runs over drawn examples. Each example is
materialized, rounded to the mode, evaluated in the mode (forward and backward, under autocast
for amp modes) and in float64 on the same rounded values, then checked. A violated check raises
an exception type of its own, so Hypothesis tracks each check as a distinct bug and shrinks
each to a minimal counterexample. ``hypothesis.target()`` steers the search toward large
outputs, large gradients and large errors.
"""

from __future__ import annotations

import copy
import math
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import torch
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.database import DirectoryBasedExampleDatabase
from hypothesis.errors import Flaky

if sys.version_info < (3, 11):
    from exceptiongroup import BaseExceptionGroup

from .checks import CHECKS, Evaluation, Violation, measure, normwise_error
from .errors import InvalidArgument, check_choice
from .modes import MODE_NAMES, Mode, resolve_modes
from .report.model import (
    FAILED,
    PASSED,
    SKIPPED,
    UNSUPPORTED,
    XFAILED,
    XPASSED,
    Finding,
    Report,
    Result,
    environment,
)
from .report.storage import write_report
from .strategies import Example, examples
from .targets import Target, make_target

__all__ = ["PROFILES", "fuzz", "run"]

_COMMON: dict[str, Any] = dict(
    deadline=None,
    verbosity=Verbosity.quiet,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
_DB_DIR = ".stress/examples"
PROFILES: dict[str, dict[str, Any]] = {
    # reproducible and side-effect free: no example database, fixed derandomized search
    "ci": dict(max_examples=30, derandomize=True, database=None),
    # the local loop: failing examples are saved and replayed first on the next run
    "dev": dict(max_examples=100, database=None),
    # nightly: a long targeted search
    "thorough": dict(max_examples=1000, database=None),
}
for _name, _opts in PROFILES.items():
    settings.register_profile(f"stress-{_name}", **_COMMON, **_opts)


def _settings(profile: str, max_examples: int | None, seed: int | None) -> settings:
    check_choice("profile", profile, tuple(PROFILES))
    opts: dict[str, Any] = {}
    if max_examples is not None:
        if not isinstance(max_examples, int) or max_examples < 1:
            raise InvalidArgument(f"max_examples={max_examples!r}: must be an int >= 1")
        opts["max_examples"] = max_examples
    if profile != "ci":
        opts["database"] = DirectoryBasedExampleDatabase(
            os.environ.get("STRESS_EXAMPLE_DB", _DB_DIR)
        )
    if seed is not None:
        opts["derandomize"] = False
    return settings(settings.get_profile(f"stress-{profile}"), **opts)


def default_profile() -> str:
    return "ci" if os.environ.get("CI") else "dev"


# ------------------------------------------------------------------------ evaluation

_UNSUPPORTED = re.compile(
    r"not implemented for '(Half|BFloat16)'|does not support (half|bfloat16|float16)", re.I
)


class _Unsupported(Exception):
    """An op has no kernel for this dtype on this device: neither a finding nor a crash."""


class Failure(Exception):
    """Raised inside the search for a violated check; one subclass per check."""

    def __init__(
        self,
        violation: Violation,
        example: Example,
        inputs: dict[str, Any],
        figures: dict[str, float],
        tb: str | None = None,
    ):
        super().__init__(violation.message)
        self.violation, self.example, self.inputs, self.figures, self.tb = (
            violation,
            example,
            inputs,
            figures,
            tb,
        )


_FAILURE_TYPES: dict[str, type[Failure]] = {}


def _failure_type(check: str) -> type[Failure]:
    """A distinct exception type per check, so Hypothesis shrinks each check's failure separately."""
    if check not in _FAILURE_TYPES:
        name = "".join(p.title() for p in check.split("_")) + "Failure"
        _FAILURE_TYPES[check] = type(name, (Failure,), {"__module__": __name__})
    return _FAILURE_TYPES[check]


def _round(value: Any, mode: Mode) -> Any:
    """Round a materialized value to the mode: what the target and the reference both see."""
    if isinstance(value, torch.Tensor):
        return value.to(mode.storage_dtype) if value.is_floating_point() else value
    if isinstance(value, float):
        return float(torch.tensor(value, dtype=mode.storage_dtype))
    return value


def _flatten(out: Any, key: str = "out") -> dict[str, torch.Tensor]:
    """Outputs as a flat dict of floating tensors: ``out``, ``out[0]``, ``out['loss']``."""
    if isinstance(out, torch.Tensor):
        return {key: out} if out.is_floating_point() else {}
    if isinstance(out, (tuple, list)):
        flat: dict[str, torch.Tensor] = {}
        for i, o in enumerate(out):
            flat.update(_flatten(o, f"{key}[{i}]"))
        return flat
    if isinstance(out, Mapping):
        flat = {}
        for k, o in out.items():
            flat.update(_flatten(o, f"{key}[{k!r}]"))
        return flat
    return {}


@dataclass
class _Executor:
    """Runs one target in one mode and in float64 on the same rounded inputs."""

    target: Target
    mode: Mode
    module: torch.nn.Module | None = field(init=False)

    def __post_init__(self) -> None:
        m = self.target.module
        self.module = (
            copy.deepcopy(m).to(self.mode.device, self.mode.storage_dtype)
            if m is not None
            else None
        )

    def evaluate(self, values: dict[str, Any]) -> Evaluation:
        module = copy.deepcopy(self.module) if self.module is not None else None
        ref_base = copy.deepcopy(module).to("cpu", torch.float64) if module is not None else None
        ref_module = copy.deepcopy(ref_base)  # running may update buffers: each run gets a copy
        outputs, grads = self._call(module, values, self.mode.device, reference=False)
        ev = Evaluation(self.mode, outputs, grads, None, None)
        ref_values = {
            k: v.to("cpu", torch.float64) if _is_float_tensor(v) else v for k, v in values.items()
        }
        try:
            ev.ref_outputs, ev.ref_grads = self._call(ref_module, ref_values, "cpu", reference=True)
        except Exception:  # noqa: BLE001 - a reference that cannot run disables only the error checks
            return ev
        eps = self.mode.facts.eps
        sensitivity: dict[str, float] = {}
        for alternate in (False, True):
            try:
                p_outputs, p_grads = self._perturbed(ref_base, ref_values, eps, alternate)
            except Exception:  # noqa: BLE001 - singular next to this input: no conditioning allowance
                return ev
            floor = self.target.error_floor
            for got, ref in ((p_outputs, ev.ref_outputs), (p_grads, ev.ref_grads or {})):
                for k, r in ref.items():
                    if k in got:
                        change = normwise_error(got[k], r, floor)[0]
                        sensitivity[k] = max(sensitivity.get(k, 0.0), change)
        ev.sensitivity = sensitivity
        return ev

    def _perturbed(
        self,
        ref_module: torch.nn.Module | None,
        ref_values: dict[str, Any],
        eps: float,
        alternate: bool,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """The float64 reference on inputs (and parameters) moved by one relative eps."""
        module = copy.deepcopy(ref_module)
        if module is not None:
            with torch.no_grad():
                for p in module.parameters():
                    p.copy_(_perturb(p, eps, alternate))
        values = {k: _perturb(v, eps, alternate) for k, v in ref_values.items()}
        return self._call(module, values, "cpu", reference=True)

    def _call(
        self,
        module: torch.nn.Module | None,
        values: dict[str, Any],
        device: str,
        *,
        reference: bool,
    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        wrt = self.target.wrt
        args: dict[str, Any] = {}
        leaves: dict[str, torch.Tensor] = {}
        for k, v in values.items():
            if isinstance(v, torch.Tensor):
                v = v.to(device)
                if v.is_floating_point() and (wrt is None or k in wrt):
                    v = v.detach().requires_grad_(True)
                    leaves[f"grad[{k!r}]"] = v
            args[k] = v
        if module is not None and wrt is None:
            leaves.update(
                {f"grad[{n!r}]": p for n, p in module.named_parameters() if p.requires_grad}
            )
        fn = module if module is not None else self.target.fn
        if reference:
            out = fn(**args)
        else:
            with self.mode.autocast():
                out = fn(**args)
        outputs = _flatten(out)
        diff = [o for o in outputs.values() if o.requires_grad]
        grads: dict[str, torch.Tensor] = {}
        if diff and leaves:
            gs = torch.autograd.grad(
                diff,
                list(leaves.values()),
                grad_outputs=[_cotangent(o) for o in diff],
                allow_unused=True,
            )
            grads = {k: g for k, g in zip(leaves, gs, strict=True) if g is not None}
        return {k: o.detach() for k, o in outputs.items()}, grads


# ±0.5 … ±0.9375 in steps of 1/16: exact in every float dtype, and ties between neighbours rare
_COTANGENT_VALUES = torch.cat([-torch.arange(8, 16) / 16, torch.arange(8, 16) / 16])


def _cotangent(out: torch.Tensor) -> torch.Tensor:
    """The vector a gradient is taken against: 1 for a scalar loss, else fixed ±[0.5, 1) entries.

    Sign-mixed entries, exact in every dtype, keep invariances such as ``sum(layer_norm(x)) ==
    const`` from making the gradient identically zero (which would turn noise into error).
    """
    if out.numel() == 1:
        return torch.ones_like(out)
    g = torch.Generator().manual_seed(out.numel())
    idx = torch.randint(len(_COTANGENT_VALUES), out.shape, generator=g)
    return _COTANGENT_VALUES[idx].to(out.device, out.dtype)


def _perturb(v: Any, eps: float, alternate: bool) -> Any:
    """Move every float by a relative ``±eps``: one ulp-sized input change.

    The signs are fixed and random; with ``alternate`` they are also flipped on every other
    element, so that of the two probes one moves neighbouring elements apart, whatever the draw.
    """
    if _is_float_tensor(v):
        g = torch.Generator().manual_seed(v.numel())
        signs = torch.randint(2, v.shape, generator=g).to(v.dtype).mul_(2).sub_(1)
        if alternate:
            signs.view(-1)[1::2] *= -1
        return v * (1 + eps * signs)
    if isinstance(v, float):
        return v * (1 - eps if alternate else 1 + eps)
    return v


def _is_float_tensor(v: Any) -> bool:
    return isinstance(v, torch.Tensor) and v.is_floating_point()


# ----------------------------------------------------------------------------- search


@dataclass
class _Stats:
    examples: int = 0
    worst: dict[str, float] = field(default_factory=dict)

    def add(self, figures: Mapping[str, float]) -> None:
        self.examples += 1
        for k, v in figures.items():
            if not math.isnan(v):
                self.worst[k] = max(self.worst.get(k, -math.inf), v)


def _log10(v: float) -> float:
    if math.isnan(v) or v >= 1e300:
        return 300.0
    return math.log10(max(v, 1e-300))


def _steer(figures: Mapping[str, float]) -> None:
    """Feed the search the signals that climb toward failures."""
    hypothesis.target(_log10(figures["max_abs_output"]), label="log10 |output|")
    hypothesis.target(_log10(figures["grad_norm"]), label="log10 grad norm")
    if "error_eps" in figures:
        hypothesis.target(_log10(figures["error_eps"]), label="log10 error/eps")


_BLOB = re.compile(r"@reproduce_failure\((.*?)\)")


def _blob(exc: BaseException) -> str | None:
    for note in getattr(exc, "__notes__", []):
        m = _BLOB.search(note)
        if m:
            return f"@reproduce_failure({m.group(1)})"
    return None


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for e in exc.exceptions for leaf in _leaves(e)]
    return [exc]


def _search(
    target: Target, mode: Mode, cfg: settings, seed: int | None
) -> tuple[_Stats, list[Failure], str | None]:
    """Run one Hypothesis search; return statistics, shrunk failures, and an unsupported-op reason."""
    executor = _Executor(target, mode)
    checks = target.checks()
    stats = _Stats()
    strategy = examples(target.arguments, mode, target.dims)

    def test(example: Example) -> None:
        values = {k: _round(r.materialize(mode), mode) for k, r in example.recipes.items()}
        saved = {
            k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in values.items()
        }
        try:
            ev = executor.evaluate(values)
        except Exception as e:  # noqa: BLE001 - whatever the user's code raises is a finding
            if (
                mode.compute_dtype != torch.float32
                and isinstance(e, (NotImplementedError, RuntimeError))
                and _UNSUPPORTED.search(str(e))
            ):
                raise _Unsupported(f"{type(e).__name__}: {str(e).splitlines()[0]}") from None
            tb = "".join(traceback.format_exception(e))
            v = Violation("exception", f"{type(e).__name__}: {e}")
            raise _failure_type("exception")(v, example, saved, {}, tb) from None
        figures = measure(ev, target.error_floor)
        stats.add(figures)
        _steer(figures)
        for check in checks:
            violation = check(ev)
            if violation is not None:
                raise _failure_type(violation.check)(violation, example, saved, figures)

    test.__name__ = test.__qualname__ = re.sub(r"\W", "_", f"{target.name}__{mode.label}")
    wrapped: Any = given(strategy)(test)
    # one example-database key per target × mode
    key = f"{target.name}[{mode.label}]".encode()
    wrapped.hypothesis.inner_test._hypothesis_internal_add_digest = key
    wrapped = cfg(wrapped)
    if seed is not None:
        wrapped = hypothesis.seed(seed)(wrapped)
    try:
        wrapped()
    except (Failure, _Unsupported, Flaky, BaseExceptionGroup) as exc:
        failures, unsupported = [], None
        for leaf in _leaves(exc):
            if isinstance(leaf, Failure):
                leaf.blob = _blob(leaf)  # type: ignore[attr-defined]
                failures.append(leaf)
            elif isinstance(leaf, _Unsupported):
                unsupported = str(leaf)
            elif isinstance(leaf, Flaky):
                v = Violation(
                    "exception", f"flaky: the failure did not reproduce on replay: {leaf}"
                )
                failures.append(_failure_type("exception")(v, Example({}, {}), {}, {}))
            else:
                raise
        return stats, failures, unsupported
    return stats, [], None


def run_one(
    target: Target, mode: Mode, cfg: settings, seed: int | None
) -> tuple[Result, list[Finding]]:
    """One target in one mode: its result row and its findings."""
    expected = target.expected(mode.name)
    result = Result(target.name, mode.label, mode.device, PASSED, expected)
    skip = mode.unavailable_reason()
    if skip:
        result.status, result.reason = SKIPPED, skip
        return result, []
    start = time.perf_counter()
    stats, failures, unsupported = _search(target, mode, cfg, seed)
    result.seconds = time.perf_counter() - start
    result.examples, result.worst = stats.examples, stats.worst
    findings = [
        Finding(
            target=target.name,
            mode=mode.label,
            check=f.violation.check,
            message=f.violation.message,
            counterexample={k: repr(r) for k, r in f.example.recipes.items()},
            dims=f.example.dims,
            figures={**f.figures, **f.violation.figures},
            expected=expected != "pass",
            reproduce_blob=getattr(f, "blob", None),
            traceback=f.tb,
            inputs=f.inputs,
        )
        for f in failures
    ]
    findings.sort(key=lambda f: CHECKS.index(f.check))
    result.checks_failed = [f.check for f in findings]
    if unsupported and not findings:
        result.status, result.reason = UNSUPPORTED, f"unsupported in {mode.label}: {unsupported}"
    elif findings:
        result.status = FAILED if expected == "pass" else XFAILED
        result.reason = None if expected == "pass" else target.reason
    elif expected == "fail":
        result.status = XPASSED
        result.reason = f"expected to fail ({target.reason}) but no failure was found in {stats.examples} examples"
    return result, findings


def run(
    targets: Iterable[Target],
    *,
    modes: Sequence[str | Mode] | str = MODE_NAMES,
    device: str = "cpu",
    profile: str | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    on_result: Callable[[Result, list[Finding]], None] | None = None,
) -> Report:
    """Run every target in every mode and return the report.

    With ``report_dir`` the report is rewritten atomically after each target × mode, so an
    interrupted run (Ctrl-C) still leaves a valid partial report there.
    """
    targets = list(targets)
    resolved = resolve_modes(modes, device)
    profile = profile or default_profile()
    cfg = _settings(profile, max_examples, seed)
    report = Report(
        settings={
            "profile": profile,
            "max_examples": cfg.max_examples,
            "seed": seed,
            "modes": [m.label for m in resolved],
            "device": device,
            "targets": [t.name for t in targets],
        },
        environment=environment(),
    )
    out = Path(report_dir, report.run_id) if report_dir is not None else None
    try:
        for t in targets:
            for m in resolved:
                result, findings = run_one(t, m, cfg, seed)
                report.results.append(result)
                report.findings.extend(findings)
                if out is not None:
                    write_report(report, out)
                if on_result is not None:
                    on_result(result, findings)
        report.complete = True
    finally:
        if out is not None:
            write_report(report, out)
            report.settings["report_path"] = str(out / "report.json")
    return report


def fuzz(
    fn: Callable[..., Any],
    *,
    modes: Sequence[str | Mode] | str = MODE_NAMES,
    device: str = "cpu",
    profile: str | None = None,
    max_examples: int | None = None,
    seed: int | None = None,
    report_dir: str | os.PathLike[str] | None = None,
    dims: Mapping[str, tuple[int, int]] | None = None,
    wrt: Sequence[str] | None = None,
    tolerances: Mapping[str, float] | None = None,
    expect: str | Mapping[str, str] | None = None,
    reason: str | None = None,
    max_output: float | None = None,
    max_grad_norm: float | None = None,
    **strategies: Any,
) -> Report:
    """Fuzz one function or module in a few lines: ``stress.fuzz(loss, x=st.logits(("B", "C")))``.

    Keyword arguments other than the options above are strategies (or constants) for the
    function's parameters. Returns a :class:`Report`; ``report.ok`` is False when a check failed.
    """
    t = make_target(
        fn,
        strategies,
        dims=dims,
        wrt=tuple(wrt) if wrt is not None else None,
        tolerances=tolerances,
        expect=expect,
        reason=reason,
        max_output=max_output,
        max_grad_norm=max_grad_norm,
    )
    return run(
        [t],
        modes=modes,
        device=device,
        profile=profile,
        max_examples=max_examples,
        seed=seed,
        report_dir=report_dir,
    )
