"""The app's pieces without a server: knob widgets, uploads, limits, the Learn pages."""

from __future__ import annotations

import json
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

import app as lab_app
from lab import catalog, report
from lab.evaluation import default_probe
from lab.training import TrainResult, TripletRecord


@pytest.fixture
def session() -> lab_app.Session:
    session = lab_app.Session()
    yield session
    session.close()
    assert not session.folder.exists()


@pytest.fixture(scope="module")
def pools() -> dict[str, lab_app.KnobPool]:
    """One knob pool per loss, each built for that loss."""
    with gr.Blocks():
        return {loss: lab_app.KnobPool(f"t{index}", loss)
                for index, loss in enumerate(catalog.LOSSES)}


@pytest.mark.parametrize("loss", list(catalog.LOSSES))
def test_the_knob_pool_shows_each_loss_at_its_catalog_defaults(
        pools: dict[str, lab_app.KnobPool], loss: str):
    entry = catalog.get(loss)
    pool = pools[loss]
    values = [component.value for component in pool.components]
    shown = [component.label for component in pool.components if component.visible]
    assert shown == [knob.name for knob in entry.knobs]
    read = lab_app.KnobPool.read(loss, values)
    expected = {knob.name: list(knob.default) if isinstance(knob.default, tuple)
                else knob.default for knob in entry.knobs}
    assert read == expected
    assert json.loads(json.dumps(read)) == read  # what the Train button sends is plain JSON
    # The updates that re-label the pool for a loss carry the properties it was built with.
    updates = lab_app.KnobPool.updates(loss)
    assert [update.get("visible") for update in updates] == [
        component.visible for component in pool.components]


def test_the_knob_pool_reads_changed_widgets_back_as_knob_values(
        pools: dict[str, lab_app.KnobPool]):
    loss = "MultipleNegativesRankingLoss"  # float, choice (name, tuple, None) knobs
    values = [component.value for component in pools[loss].components]
    entry = catalog.get(loss)
    slot = {knob.name: index for index, knob in enumerate(entry.knobs)}
    values[3 * slot["scale"]] = 7.0
    values[3 * slot["directions"] + 2] = "('query_to_doc', 'doc_to_query')"
    values[3 * slot["hardness_mode"] + 2] = "hard_negatives"
    values[3 * slot["similarity_fct"] + 2] = "not a choice"  # falls back to the default
    read = lab_app.KnobPool.read(loss, values)
    assert read["scale"] == 7.0 and read["directions"] == ["query_to_doc", "doc_to_query"]
    assert read["hardness_mode"] == "hard_negatives" and read["similarity_fct"] == "cos_sim"
    assert lab_app.KnobPool.read("NoSuchLoss", values) == {}


@pytest.mark.parametrize("loss", list(catalog.LOSSES))
def test_every_loss_has_a_learn_page_and_a_data_note(loss: str):
    entry = catalog.get(loss)
    page = lab_app.describe(loss)
    assert page.startswith(f"## {loss}") and entry.formula in page
    assert entry.explanation in page and "When to choose it" in page
    for fmt in entry.formats:
        assert f"`{fmt}`" in page
    for knob in entry.knobs:
        assert f"`{knob.name}`" in page
    note = lab_app.data_note(loss)
    data = catalog.get(entry.default_inner_loss) if entry.wraps else entry
    assert f"`{data.default_format}`" in note


def test_menus_group_every_loss_by_family_in_catalog_order():
    choices = lab_app.loss_choices()
    assert [name for _, name in choices] == [entry.name for entries in
                                             catalog.by_family().values() for entry in entries]
    assert sorted(name for _, name in choices) == sorted(catalog.LOSSES)
    assert all(label == f"{catalog.get(name).family} · {name}" for label, name in choices)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_upload_in_the_right_format_is_read_inside_the_session_folder(
        session: lab_app.Session, tmp_path: Path):
    rows = "\n".join(f'{{"anchor": "question {n}", "positive": "answer {n}"}}' for n in range(10))
    data = lab_app.read_upload(_write(tmp_path / "q&a pairs.jsonl", rows), "pair", session)
    assert sorted(data) == ["eval", "train"] and len(data["train"]) + len(data["eval"]) == 10
    copies = list((session.folder / "uploads").rglob("*.jsonl"))
    assert [copy.name for copy in copies] == ["q_a_pairs.jsonl"]  # sanitised name, own folder
    # The parsed copy (datasets' arrow cache) stays in the session folder too.
    (cache,) = (session.folder / "uploads").glob("*/cache")
    assert any(path.suffix == ".arrow" for path in cache.rglob("*"))


@pytest.mark.parametrize(("content", "limits", "message"), [
    ("sentence,label\n" + "a b,1\n" * 30, {"max_upload_rows": 20}, "30 rows is over this "
                                                                   "server's 20 row limit"),
    ("sentence,label\n" + "a b,1\n" * 30, {"max_upload_mb": 0.0001}, "over this server's "
                                                                     "0.0001 MB upload limit"),
    ("sentence,label\nok,1\n\xff\n", {}, "not UTF-8 text"),
    ("sentence,label\nok,one\n", {}, "column 'label'"),
])
def test_uploads_over_the_limits_or_malformed_are_refused(
        session: lab_app.Session, tmp_path: Path, content: str, limits: dict, message: str):
    path = tmp_path / "data.csv"
    if "\xff" in content:
        path.write_bytes(content.replace("\xff", "").encode() + b"\xff\xfe,1\n")
    else:
        path.write_text(content)
    with pytest.raises(gr.Error) as error:
        lab_app.read_upload(path, "sentence-label", session, lab_app.Limits(**limits))
    assert message in error.value.message


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LAB_APP_MAX_STEPS", "50")
    monkeypatch.setenv("LAB_APP_RUN_SECONDS", "12.5")
    limits = lab_app.Limits.from_env()
    assert limits.max_steps == 50 and limits.run_seconds == 12.5
    assert limits.max_batch_size == lab_app.Limits().max_batch_size
    assert "at most 50 steps" in lab_app._limits_text(limits)


def test_a_session_is_its_own_deep_copy_and_gets_a_private_folder():
    import copy

    first, second = lab_app.Session(), lab_app.Session()
    try:
        assert copy.deepcopy(first) is first
        assert first.folder != second.folder and first.folder.parent == second.folder.parent
    finally:
        first.close()
        second.close()


def test_metrics_table_says_which_direction_is_better():
    table = lab_app.metrics_table({"topic_knn_accuracy": 0.2, "alignment": 0.5},
                                  {"topic_knn_accuracy": 0.4, "alignment": 0.3})
    assert table.to_dict("records") == [
        {"metric": "topic_knn_accuracy", "before": 0.2, "after": 0.4, "change": 0.2,
         "better when": "higher"},
        {"metric": "alignment", "before": 0.5, "after": 0.3, "change": -0.2,
         "better when": "lower"}]


def test_report_figures_builds_only_the_plots_asked_for():
    probe = default_probe()
    rng = np.random.default_rng(0)
    snapshots = [(0, rng.normal(size=(len(probe.texts), 8))),
                 (2, rng.normal(size=(len(probe.texts), 8)))]
    record = TripletRecord(step=2, texts=["a", "b", "c", "d"], labels=[0, 0, 1, 1],
                           embeddings=rng.normal(size=(4, 8)), anchor=[0], positive=[1],
                           negative=[2], losses=[0.5], active=[True], num_valid=1,
                           num_active=1)
    result = TrainResult(loss="BatchHardTripletLoss", model_name="tiny",
                         data_format="sentence-label", knobs={}, steps=2, batch_size=4,
                         learning_rate=0.01, device="cpu", seed=0, probe=probe,
                         curves={"loss": [(1, 1.0), (2, 0.5)]}, snapshots=snapshots,
                         active_fraction=[(1, 1.0), (2, 0.5)], triplets=[record])
    every = report.figures(result)
    assert {"loss-curve", "similarity-histograms", "active-triplets",
            "mined-triplets-map"} <= set(every)
    some = report.figures(result, only={"loss-curve", "active-triplets", "quality-vs-layer"})
    assert list(some) == ["loss-curve", "active-triplets"]


def test_the_readme_is_a_space_card_pinned_to_the_installed_gradio():
    readme = (Path(lab_app.__file__).parent / "README.md").read_text()
    assert readme.startswith("---\n")
    card = dict(line.split(": ", 1) for line in readme.split("---\n")[1].splitlines())
    assert card["sdk"] == "gradio" and card["app_file"] == "app.py"
    assert card["sdk_version"] == gr.__version__
    assert len(card["short_description"]) <= 60


def test_training_handlers_get_spaces_gpu_only_where_spaces_exists(
        monkeypatch: pytest.MonkeyPatch):
    def handler() -> str:
        return "trained"

    assert lab_app._gpu(handler) is handler  # no `spaces` package here: unchanged
    requested = []

    class FakeSpaces:
        @staticmethod
        def GPU(duration: int):  # the name of the real decorator
            requested.append(duration)
            return lambda function: ("on a GPU", function)

    monkeypatch.setattr(lab_app, "spaces", FakeSpaces)
    assert lab_app._gpu(handler) == ("on a GPU", handler)
    assert requested == [int(lab_app.LIMITS.run_seconds) + 60]
