"""The one mechanism per job: stage keys derived from config fields, the results writers, the
snapshot rule, the image reader and PNG writer, and the CLI's deprecated flags."""

import copy
import dataclasses
import io
import json
import os
import stat

import numpy as np
import pytest
import torch

from fvtrust.empirical.circuits.gate_setup import GateConfig
from fvtrust.empirical.data.images import png_bytes, read_image, read_image_uint8, save_png, to_uint8
from fvtrust.empirical.experiments.afc import AFCConfig
from fvtrust.empirical.experiments.fooling import FoolingConfig
from fvtrust.empirical.experiments.gate_family import GateFamilyConfig
from fvtrust.empirical.experiments.silent import SilentConfig
from fvtrust.empirical.render.job import RenderJob
from fvtrust.empirical.render.snapshots import log_steps
from fvtrust.empirical.reports.writers import WRITERS, write_fooling, write_proofs
from fvtrust.empirical.runs.appendix import AFCFullConfig
from fvtrust.empirical.runs.sweep.plan import SweepPlan
from fvtrust.outputs import umask_file_mode
from fvtrust.stages import RUN_ONLY, Stages, result_fields, stage_key

CONFIGS = [FoolingConfig(), SilentConfig(), AFCConfig(), GateConfig(), SweepPlan(), RenderJob(),
           GateFamilyConfig(), AFCFullConfig()]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_adding_a_field_to_a_config_changes_its_stage_key(config):
    cls = type(config)
    grown = dataclasses.make_dataclass(cls.__name__, [("new_setting", int, dataclasses.field(default=0))],
                                       bases=(cls,))
    assert stage_key(grown()) != stage_key(config)
    # ... unless the field is marked as never changing a result
    quiet = dataclasses.make_dataclass(
        cls.__name__, [("where", str, dataclasses.field(default="x", metadata=RUN_ONLY))], bases=(cls,))
    assert stage_key(quiet()) == stage_key(config)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_every_result_field_is_in_the_key(config):
    fields = result_fields(config)
    for f in dataclasses.fields(config):
        omitted = f.metadata.get("omit_from_key", lambda c: False)(config)  # e.g. sources, no images
        assert (f.name in fields) == (f.metadata.get("affects_results", True) and not omitted)
        if omitted:  # ... where the field means something (or leaves its default), it is in the key
            where = {"sources": {"images": "/data"}, "reference_sides": {"reference_sides": "max"},
                     "family": {"family": "wide"}, "measure": {"measure": ("afc_references_max",)}}
            other = dataclasses.replace(config, **where[f.name])
            assert f.name in result_fields(other)
            assert stage_key(other) != stage_key(config)
            if f.name == "sources":
                assert stage_key(dataclasses.replace(other, sources="file")) != stage_key(other)
    # changing any one result field changes the key (set directly: the key, not validation)
    for name, value in fields.items():
        other = "changed" if isinstance(value, str) or value is None else (
            [*value, 999] if isinstance(value, list | tuple) else value + 1)
        changed = copy.copy(config)
        object.__setattr__(changed, name, other)
        assert stage_key(changed) != stage_key(config), name


def test_scope_fields_leave_the_store_identity_alone():
    plan = SweepPlan()
    wider = dataclasses.replace(plan, layers=["_blocks.2", "_blocks.10"], units="0-3", chunk=2)
    assert wider.settings_hash() == plan.settings_hash()
    assert RenderJob(units=[0, 1]).settings_hash() == RenderJob(units=[5]).settings_hash()
    assert RenderJob(batch_size=8).settings_hash() == RenderJob().settings_hash()  # speed only
    assert RenderJob(minimize=True).folder != RenderJob().folder


def test_stage_keys_need_a_config_dataclass(tmp_path):
    with pytest.raises(TypeError, match="config dataclass"):
        Stages(tmp_path, {"a": 1})
    # the same fields in another config type are another key
    assert stage_key(GateConfig()) != stage_key(dataclasses.make_dataclass(
        "Other", [(f.name, f.type, dataclasses.field(default=getattr(GateConfig(), f.name)))
                  for f in dataclasses.fields(GateConfig)])())


def test_fooling_and_silent_share_one_gate():
    assert stage_key(FoolingConfig().gate_config()) == stage_key(SilentConfig().gate_config())
    assert stage_key(FoolingConfig(mode="permute").gate_config()) == stage_key(FoolingConfig().gate_config())
    # a setting of the fooling experiment that the gate does not depend on leaves the gate alone
    assert stage_key(FoolingConfig(target="chelsea", steps=32).gate_config()) == \
        stage_key(FoolingConfig().gate_config())
    assert stage_key(FoolingConfig(n_natural=500).gate_config()) != stage_key(FoolingConfig().gate_config())
    with pytest.raises(ValueError, match="gate must be one of"):
        FoolingConfig(gate="psychic")


@pytest.mark.parametrize("steps", [1, 2, 3, 8, 24, 64, 96, 100, 512])
def test_one_snapshot_rule(steps):
    shots = log_steps(steps)
    assert shots[0] == 1 and shots[-1] == steps and shots == sorted(set(shots))
    # every power of two below the last step, then the last step
    assert shots == [2 ** k for k in range(steps.bit_length()) if 2 ** k < steps] + [steps]
    assert FoolingConfig(steps=max(steps, 16)).snapshots == tuple(log_steps(max(steps, 16)))
    assert SilentConfig().steps == 96 and tuple(log_steps(96)) == (1, 2, 4, 8, 16, 32, 64, 96)


def test_a_fooling_config_whose_early_step_is_no_snapshot_is_refused():
    with pytest.raises(ValueError, match="early_step 12 must be one of the snapshot steps"):
        FoolingConfig(early_step=12)


def test_png_writer_and_reader_round_trip(tmp_path):
    image = torch.rand(3, 20, 30, generator=torch.Generator().manual_seed(0))
    path = save_png(image, tmp_path / "deep" / "x.png")
    assert torch.equal(read_image_uint8(path), torch.from_numpy(to_uint8(image)).permute(2, 0, 1))
    assert torch.equal(read_image(path), read_image_uint8(path).float() / 255)
    assert torch.equal(read_image(io.BytesIO(png_bytes(image))), read_image(path))
    # readable by the user's group like every result file (mkstemp alone would give 0600)
    assert stat.S_IMODE(os.stat(path).st_mode) == umask_file_mode()
    assert not [p for p in (tmp_path / "deep").iterdir() if p.name != "x.png"]  # no temporary left
    small = read_image_uint8(path, short_side=10)
    assert small.shape == (3, 10, 15) and small.dtype == torch.uint8


def test_a_damaged_image_is_named_in_one_line(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*bad\.png") as info:
        read_image(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"bad\.png is damaged .*; delete it \(it is re-rendered\) or rerun"):
        read_image(bad, damaged="it is re-rendered")


def test_writers_write_json_beside_the_figure(tmp_path):
    assert set(WRITERS) == {"fooling", "gate_family", "silent", "sanity", "afc", "proofs", "sweep"}
    images = {k: torch.rand(2, 3, 16, 16) for k in ("original", "manipulated")}
    data = {"config": {"mode": "permute", "gate": "features", "units": [1, 2], "steps": 4},
            "n": np.float64(0.5).item()}
    paths = write_fooling(data, {**images, "target": images["original"]}, tmp_path)
    assert [p.name for p in paths] == ["fooling_permute.json", "fooling_permute.png", "fooling_permute.pdf"]
    assert json.loads(paths[0].read_text()) == data
    from fvtrust.proofs.base import Proof, ProofReport, Step

    def report(key: str, passed: bool) -> ProofReport:
        proof = Proof(key, "Lemma", key, "statement", "proof", "theory/x.py", "tests/x.py", list)
        return ProofReport(proof, [Step("a step", passed)], 0.0)
    (proofs,) = write_proofs([report("one", True), report("two", False)], tmp_path)
    saved = json.loads(proofs.read_text())
    assert [p["passed"] for p in saved["proofs"]] == [True, False]
    assert (saved["passed"], saved["total"], saved["steps"]) == (1, 2, 2)
    assert saved["smt"] == {"queries": 0, "rechecked": False}


def test_deprecated_flags_warn_and_still_work(capsys):
    from fvtrust.empirical.cli.parser import build_parser

    args = build_parser().parse_args(["afc", "--k", "3", "--n", "4", "--pool", "50"])
    assert (args.references, args.trials, args.natural) == (3, 4, 50)
    err = capsys.readouterr().err
    for old, new in (("--k", "--references"), ("--n", "--trials"), ("--pool", "--natural")):
        assert f"{old} is deprecated" in err and f"use {new}" in err
    args = build_parser().parse_args(["sweep", "--afc-trials", "5", "--references", "2"])
    assert (args.trials, args.references) == (5, 2)
    assert "--afc-trials is deprecated" in capsys.readouterr().err


def test_every_measurement_name_has_its_function():
    from fvtrust.empirical.runs.sweep.plan import MEASUREMENTS, MODEL_MEASUREMENTS
    from fvtrust.empirical.runs.sweep.worker import UNIT_MEASUREMENTS

    assert (*UNIT_MEASUREMENTS, *MODEL_MEASUREMENTS) == MEASUREMENTS
