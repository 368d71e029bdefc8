"""Random sequences of render and sweep-store commands into one folder, with interruptions,
bad arguments, ``--force`` and files a user puts there: no user file is ever removed or
changed, no finished unit is lost, and every stored activation is its saved image's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from fvtrust.empirical.data.images import read_image
from fvtrust.empirical.nets.layers import forward_activations
from fvtrust.empirical.render import job as job_module
from fvtrust.empirical.render.job import RenderJob, run_render_job
from fvtrust.empirical.runs.sweep.store import SweepStore
from fvtrust.outputs import OutputRefused

LAYER = "_blocks.2"


class Interrupted(KeyboardInterrupt):
    pass


@pytest.fixture
def machine(lite0, tmp_path_factory, monkeypatch):
    monkeypatch.setattr(job_module, "load_model", lambda *a, **k: lite0)
    real_render = job_module.render
    budget = {"batches": None}

    def render(*args, **kwargs):  # Ctrl-C after a given number of batches
        if budget["batches"] is not None:
            if budget["batches"] == 0:
                raise Interrupted
            budget["batches"] -= 1
        return real_render(*args, **kwargs)
    monkeypatch.setattr(job_module, "render", render)

    class Commands(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.root = tmp_path_factory.mktemp("out")
            self.out = self.root / "renders"
            self.store = self.root / "store"
            self.user: dict[Path, bytes] = {}
            self.finished: set[tuple[str, int]] = set()  # (settings folder, unit)

        @rule(units=st.sets(st.integers(0, 5), min_size=1, max_size=3), minimize=st.booleans(),
              steps=st.sampled_from([1, 2]), batch=st.sampled_from([1, 2, 4]), force=st.booleans(),
              interrupt=st.sampled_from([None, None, 0, 1]))
        def render(self, units, minimize, steps, batch, force, interrupt):
            job = RenderJob(layer=LAYER, units=sorted(units), steps=steps, size=16,
                            minimize=minimize, batch_size=batch)
            budget["batches"] = interrupt
            try:
                run_render_job(job, self.out, force=force)
            except Interrupted:
                return
            except OutputRefused:
                assert self.user or self.kind() != "render", "refused a folder of our own renders"
                return
            finally:
                budget["batches"] = None
            self.finished |= {(job.folder, u) for u in units}

        def kind(self) -> str | None:
            identity = self.out / ".fvtrust.json"
            return json.loads(identity.read_text())["kind"] if identity.exists() else None

        @rule(bad=st.sampled_from([{"steps": 0}, {"batch_size": 0}, {"size": -1}, {"units": [-1]}]))
        def bad_arguments(self, bad):
            with pytest.raises(ValueError):
                run_render_job(RenderJob(layer=LAYER, **{"units": [0], **bad}), self.out)

        @rule(name=st.sampled_from(["notes.txt", "unit_0000.png", "render.json"]),
              inside=st.booleans())
        def user_adds_a_file(self, name, inside):
            folders = sorted(p for p in self.out.glob(f"{LAYER}-*") if p.is_dir()) if inside else []
            where = folders[0] if folders else self.out
            path = where / name
            if path.exists():
                return  # ours: a user who overwrites our file owns the consequences
            where.mkdir(parents=True, exist_ok=True)
            data = f"the user's {name}".encode()
            path.write_bytes(data)
            self.user[path] = data

        @rule(force=st.booleans(), settings_hash=st.sampled_from(["aaaa", "bbbb"]),
              into_renders=st.booleans())
        def sweep_store(self, force, settings_hash, into_renders):
            root = self.out if into_renders else self.store
            try:
                store = SweepStore(root, {"h": settings_hash}, settings_hash, force=force)
            except ValueError:  # a render folder, a foreign folder, or other settings unforced
                return
            store.open()
            store.add(f"t-{settings_hash}", [{"model": "m", "weights": "", "layer": "l", "unit": 0,
                                               "status": "ok", "config_hash": settings_hash}],
                      {"images/m/l/unit_0000_max.png": b"png"})
            store.consolidate()
            store.drop_stale()
            assert (root / "units.parquet").exists()

        @invariant()
        def user_files_untouched(self):
            for path, data in self.user.items():
                assert path.read_bytes() == data, path

        @invariant()
        def finished_units_kept_and_their_activations_are_their_pngs(self):
            for folder, unit in self.finished:
                png = self.out / folder / f"unit_{unit:04d}.png"
                if png in self.user:
                    continue  # a user's file there: never ours again, nothing to check
                assert png.exists(), png
                record = json.loads((self.out / folder / "render.json").read_text())
                stored = record["units"][str(unit)]["final_activation"]
                image = read_image(png)[None]
                with torch.no_grad():
                    value = float(forward_activations(lite0, image, [LAYER])[LAYER][0, unit].mean())
                assert stored == pytest.approx(value, rel=1e-4, abs=1e-5), (folder, unit)

    return Commands


def test_random_command_sequences_lose_nothing(machine):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(machine, settings=settings(
        settings.default, stateful_step_count=6,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]))
