"""The two backends mirror each other module for module (Keras 3's test_backend_consistency).

Compares, without importing any framework (AST only): the module files, and for every public
top-level function of the modules not in SAME_ROLE_ONLY its parameter names, order, kinds and
defaults (classes differ by framework: Keras layers vs torch modules; the adapters' methods are
the contract's hooks). Annotations are not compared: tensor types necessarily differ.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BACKENDS = Path(__file__).resolve().parents[2] / "backends"
MODULES = ("__init__", "physics", "geometry", "model", "weights", "train", "steps", "optim",
           "infer", "stitch", "adapter")
#: Twins by role and semantics, not by signature: TensorFlow uses Keras's own Adam and callbacks,
#: torch reimplements them (its optimiser takes the parameters; its plateau is a scheduler).
SAME_ROLE_ONLY = ("__init__", "adapter", "optim")
#: Names allowed on one side only, with the reason (a data file rather than ifs in the test).
ONE_SIDED: dict[str, str] = {}


def _signature(node: ast.FunctionDef) -> tuple:
    args = node.args
    defaults = [ast.unparse(d) for d in args.defaults]
    kw_defaults = [None if d is None else ast.unparse(d) for d in args.kw_defaults]
    return (
        tuple(a.arg for a in args.posonlyargs),
        tuple(a.arg for a in args.args),
        tuple(defaults),
        args.vararg.arg if args.vararg else None,
        tuple(a.arg for a in args.kwonlyargs),
        tuple(kw_defaults),
        args.kwarg.arg if args.kwarg else None,
    )


def _public_surface(path: Path) -> dict[str, tuple]:
    tree = ast.parse(path.read_text())
    surface: dict[str, tuple] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            surface[node.name] = _signature(node)
    return surface


@pytest.mark.parametrize("module", MODULES)
def test_module_exists_in_both_backends(module):
    for backend in ("tensorflow", "torch"):
        assert (BACKENDS / backend / f"{module}.py").exists(), f"backends/{backend}/{module}.py"


@pytest.mark.parametrize("module", [m for m in MODULES if m not in SAME_ROLE_ONLY])
def test_public_functions_have_identical_signatures(module):
    tf = _public_surface(BACKENDS / "tensorflow" / f"{module}.py")
    torch = _public_surface(BACKENDS / "torch" / f"{module}.py")
    only_tf = sorted(set(tf) - set(torch) - set(ONE_SIDED))
    only_torch = sorted(set(torch) - set(tf) - set(ONE_SIDED))
    assert not only_tf and not only_torch, (
        f"{module}: only in tensorflow {only_tf}, only in torch {only_torch}")
    drift = {name: (tf[name], torch[name]) for name in tf if name in torch
             and tf[name] != torch[name]}
    assert not drift, f"{module}: signatures differ (tensorflow, torch): {drift}"


def test_the_spec_functions_are_present():
    spec = {
        "physics": {"normalise_probe", "exit_wave", "farfield_amplitude", "poisson_nll",
                    "mae_loss"},
        "geometry": {"translate", "pad_to_canvas", "trim_canvas", "merge_group", "extract_group"},
        "model": {"build_model", "forward_outputs"},
        "weights": {"export_weights", "import_weights"},
        "train": {"configure_numerics", "loss_value", "fit"},
        "steps": {"loss_and_grads", "train_steps"},
        "infer": {"load_bundle", "predict_patches", "infer"},
        "stitch": {"stitch_patches", "stitch_patches_loop"},
    }
    for module, names in spec.items():
        for backend in ("tensorflow", "torch"):
            surface = _public_surface(BACKENDS / backend / f"{module}.py")
            missing = sorted(names - set(surface))
            assert not missing, f"backends/{backend}/{module}.py lacks {missing}"
