"""The app's API, driven with gradio_client against the server on 127.0.0.1 (see conftest.py).

Each Client is one session. Outputs of /train come in the order of ``app.TRAIN_OUTPUTS``;
the run summary (index 1) is plain JSON, so most checks read it.
"""

from __future__ import annotations

import dataclasses
import math
import time
import zipfile
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

import app as lab_app
from lab import catalog
from lab.training import TrainResult

TRAIN = {name: index for index, name in enumerate(lab_app.TRAIN_OUTPUTS)}
COMPARE = {name: index for index, name in enumerate(lab_app.COMPARE_OUTPUTS)}
PLAYGROUND = {name: index for index, name in enumerate(lab_app.PLAYGROUND_OUTPUTS)}


@pytest.fixture
def client(app_url: str, tmp_path: Path) -> Client:
    """A fresh client: a session of its own."""
    return Client(app_url, analytics_enabled=False, verbose=False,
                  download_files=str(tmp_path / "downloads"))


def train_inputs(loss: str, **changes: object) -> dict[str, object]:
    """All /train inputs for a short run of ``loss`` on its catalog defaults."""
    entry = catalog.get(loss)
    inputs = {"loss": loss, "model": entry.default_model, "dataset": "", "upload": None,
              "steps": 2, "batch_size": 8, "learning_rate": None, "snapshots": 1,
              "inner_loss": "", "knobs": "{}", "seed": 0}
    inputs.update(changes)
    return inputs


def summary_of(outputs: list) -> dict:
    return outputs[TRAIN["summary"]]


def plot_data(value: object) -> str:
    """The image a gr.Plot output carries (a data URL), from a value or an update dict."""
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    assert isinstance(value, dict), value
    return value["plot"]


def latest(updates: list, name: str, index: dict[str, int] = TRAIN) -> object:
    """The value output ``name`` shows after all ``updates``: outputs a handler left unchanged
    (``gr.skip()``) keep the value of an earlier update."""
    for update in reversed(updates):
        value = update[index[name]]
        if not (isinstance(value, dict) and value.get("__type__") == "update"
                and "value" not in value):
            return value
    raise AssertionError(f"{name} was never set")


def run(client: Client, **inputs: object) -> tuple[list, list]:
    """(final outputs, every update) of one /train call."""
    job = client.submit(**inputs, api_name="/train")
    final = job.result(timeout=300)
    return final, job.outputs()


def table_rows(value: object) -> list[list]:
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    return value["data"]


def one_loss_per_family() -> list[str]:
    """The first loss of each family that trains on the fast static model (else the first)."""
    chosen = []
    for entries in catalog.by_family().values():
        fast = [entry for entry in entries if entry.default_model == "tiny"
                and not entry.needs_guide]
        chosen.append((fast or entries)[0].name)
    return chosen


@pytest.mark.slow
@pytest.mark.parametrize("loss", one_loss_per_family())
def test_a_short_run_of_each_family_reports_curve_maps_and_metrics(client: Client, loss: str):
    outputs, updates = run(client, **train_inputs(loss))
    summary = summary_of(outputs)
    assert summary["phase"] == "done", summary
    assert summary["loss"] == loss and summary["steps_done"] == 2 and not summary["stopped"]
    assert math.isfinite(summary["last_loss"])
    assert summary["metrics_before"] and set(summary["metrics_before"]) == set(
        summary["metrics_after"])
    assert summary["data_format"] == catalog.get(loss).default_format or catalog.get(loss).wraps
    for plot in ("loss_plot", "map_plot", "hist_plot"):
        assert plot_data(latest(updates, plot)).startswith("data:image/"), plot
    metrics = outputs[TRAIN["metrics"]]
    assert [row[0] for row in metrics["data"]] == list(summary["metrics_before"])
    if catalog.get(loss).name == "MatryoshkaLoss":  # the modifiers family: quality vs dimension
        assert outputs[TRAIN["dims_plot"]]["visible"] is True
        assert plot_data(outputs[TRAIN["dims_plot"]]).startswith("data:image/")


@pytest.mark.slow
def test_a_run_streams_updates_with_mined_triplets_before_it_ends(client: Client):
    job = client.submit(**train_inputs("BatchHardTripletLoss", steps=6, snapshots=2),
                        api_name="/train")
    final = job.result(timeout=240)
    updates = job.outputs()
    phases = [summary_of(update)["phase"] for update in updates]
    assert phases[0] == "starting" and phases[-1] == "done"
    training = [summary_of(update)["step"] for update in updates
                if summary_of(update)["phase"] == "training"]
    assert training, f"no update arrived while training: {phases}"
    assert training == sorted(training) and training[0] < 6
    assert len(updates) >= 3
    # The mined triplets of the latest recorded batch: real texts from the teaching corpus.
    rows = table_rows(latest(updates, "triplet_table"))
    assert rows and all(isinstance(text, str) and len(text) > 10 for text in rows[0][1:4])
    assert rows[0][0] == 6, "the table shows the batch of the last step"
    triplet_plot = latest(updates, "triplet_plot")
    assert triplet_plot["visible"] is True and plot_data(triplet_plot).startswith("data:image/")
    summary = summary_of(final)
    assert summary["triplet_records"] >= 2 and summary["snapshot_steps"] == [0, 3, 6]


@pytest.mark.slow
def test_stop_ends_the_run_cleanly_and_keeps_what_was_recorded(client: Client):
    assert client.predict(api_name="/stop") == "No run in progress in this session."
    job = client.submit(**train_inputs("CoSENTLoss", steps=400, snapshots=2), api_name="/train")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        steps = [summary_of(update).get("step", 0) for update in job.outputs()]
        if steps and max(steps) >= 2:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the run sent no progress within 120 s")
    assert "Stopping" in client.predict(api_name="/stop")
    final = job.result(timeout=120)
    summary = summary_of(final)
    assert summary["phase"] == "stopped" and summary["stopped"] is True
    assert 2 <= summary["steps_done"] < 400
    assert summary["metrics_after"], "the metrics at the stop step are kept"
    assert "Stopped at step" in final[TRAIN["status"]]
    assert plot_data(final[TRAIN["hist_plot"]]).startswith("data:image/")


@pytest.mark.slow
def test_a_run_stops_at_the_time_limit_and_keeps_its_results(
        client: Client, monkeypatch: pytest.MonkeyPatch):
    # The server runs in this process and reads app.LIMITS at each call.
    monkeypatch.setattr(lab_app, "LIMITS", dataclasses.replace(lab_app.LIMITS, run_seconds=2.0))
    outputs = client.predict(**train_inputs("CoSENTLoss", steps=400), api_name="/train")
    summary = summary_of(outputs)
    assert summary["phase"] == "stopped" and summary["steps_done"] < 400
    assert summary["stop_reason"] == "the time limit of 2 s per run was reached"
    assert summary["metrics_after"] and "time limit" in outputs[TRAIN["status"]]


@pytest.mark.slow
def test_downloads_hold_the_model_and_the_run_and_stay_in_their_session(
        client: Client, app_url: str, tmp_path: Path):
    other = Client(app_url, analytics_enabled=False, verbose=False,
                   download_files=str(tmp_path / "other"))
    client.predict(**train_inputs("MultipleNegativesRankingLoss"), api_name="/train")
    with pytest.raises(AppError, match="no finished run in this session"):
        other.predict(api_name="/download")
    assert other.predict(api_name="/stop") == "No run in progress in this session."
    model_zip, run_zip = client.predict(api_name="/download")
    with zipfile.ZipFile(model_zip) as archive:
        names = archive.namelist()
    assert any(name.endswith("modules.json") for name in names)
    assert any(name.endswith(("model.safetensors", "pytorch_model.bin")) for name in names)
    with zipfile.ZipFile(run_zip) as archive:
        archive.extractall(tmp_path / "run")
        names = archive.namelist()
    assert any(name.endswith("plots/loss-curve.png") for name in names)
    assert not any("/model/" in name for name in names)
    (folder,) = (tmp_path / "run").iterdir()
    result = TrainResult.load(folder, load_model=False)
    assert result.loss == "MultipleNegativesRankingLoss" and result.steps_done == 2


@pytest.mark.slow
def test_an_uploaded_csv_is_the_training_data(client: Client, tmp_path: Path):
    rows = ["sentence1,sentence2,score"]
    for number in range(24):
        rows.append(f"The cat sat on mat number {number}.,A cat was sitting on a mat.,0.9")
        rows.append(f"Stock prices fell on day {number}.,The choir sang a new hymn.,0.1")
    path = tmp_path / "my pairs.csv"
    path.write_text("\n".join(rows) + "\n")
    outputs = client.predict(**train_inputs("CoSENTLoss", dataset="pair-score",
                                             upload=handle_file(str(path))),
                             api_name="/train")
    summary = summary_of(outputs)
    assert summary["phase"] == "done" and summary["data_format"] == "pair-score"
    assert summary["data"] == "upload my pairs.csv (pair-score)"


@pytest.mark.slow
def test_compare_trains_two_losses_with_the_same_budget(client: Client):
    job = client.submit(losses=["BatchHardTripletLoss", "CoSENTLoss"], model="tiny", steps=3,
                        batch_size=8, seed=0, api_name="/compare")
    final = job.result(timeout=240)
    summary = final[COMPARE["summary"]]
    assert summary["phase"] == "done", summary
    assert summary["finished"] == ["BatchHardTripletLoss", "CoSENTLoss"]
    for name, result in summary["results"].items():
        assert result["steps_done"] == 3 and result["model"] == "tiny", name
        assert result["metrics_after"]["topic_knn_accuracy"] >= 0
    table = final[COMPARE["metrics"]]
    assert table["headers"] == ["what", "BatchHardTripletLoss", "CoSENTLoss"]
    assert [row[0] for row in table["data"]][:2] == ["data", "model"]
    assert table["data"][0][1:] == ["sentence-label", "pair-score"]
    assert plot_data(final[COMPARE["curves_plot"]]).startswith("data:image/")
    maps = [update for update in job.outputs() for slot in (0, 1)
            if isinstance(update[COMPARE[f"map_{slot}"]], dict)
            and update[COMPARE[f"map_{slot}"]].get("plot")]
    assert len(maps) == 2, "each loss's map arrives once it is trained"


def test_playground_steps_move_the_points_and_lower_the_loss(client: Client):
    settings = {"loss": "ContrastiveLoss", "classes": 3, "per_class": 5, "seed": 1,
                "learning_rate": 0.1, "optimizer": "sgd", "knobs": "{}", "links": False}
    start = client.predict(**settings, api_name="/playground_reset")
    assert start[PLAYGROUND["pg_summary"]]["steps"] == 0
    assert plot_data(start[PLAYGROUND["trajectory"]]).startswith("data:image/")
    stepped = client.predict(**settings, steps=30, api_name="/playground_step")[
        PLAYGROUND["pg_summary"]]
    assert stepped["steps"] == 30 and stepped["points"] == 15
    assert stepped["mean_moved"] > 0 and stepped["last_loss"] < stepped["first_loss"]
    job = client.submit(**settings, steps=5, api_name="/playground_run")
    job.result(timeout=60)
    steps = [update[PLAYGROUND["pg_summary"]]["steps"] for update in job.outputs()]
    assert steps == list(range(35, 85, 5)), "ten streamed frames continue the same points"
    changed = client.predict(**{**settings, "knobs": '{"margin": 0.9}'}, steps=1,
                             api_name="/playground_step")[PLAYGROUND["pg_summary"]]
    assert changed["steps"] == 1, "new knobs start a new playground"


@pytest.mark.parametrize(("inputs", "message"), [
    ({"loss": "BatchHardTripletLos"}, "Unknown loss 'BatchHardTripletLos'. Did you mean "
                                      "'BatchHardTripletLoss'?"),
    ({"steps": 100_000}, "steps must be from 1 to 500; got 100000"),
    ({"batch_size": 1000}, "batch size must be from 2 to 128; got 1000"),
    ({"dataset": "pair"}, "BatchHardTripletLoss trains on data format sentence-label; got 'pair'"),
    ({"knobs": "margin=2"}, "knobs must be a JSON object"),
    ({"model": "gpt-5"}, "model must be one of tiny, minilm, tiny-bert"),
    ({"inner_loss": "CoSENTLoss"}, "wraps no other loss"),
])
def test_bad_train_inputs_get_a_clear_error(client: Client, inputs: dict, message: str):
    with pytest.raises(AppError) as error:
        client.predict(**{**train_inputs("BatchHardTripletLoss"), **inputs}, api_name="/train")
    assert message in str(error.value)


def test_an_unknown_knob_is_named_by_the_training_error(client: Client):
    with pytest.raises(AppError, match="BatchHardTripletLoss has no knob 'marginn'"):
        client.predict(**train_inputs("BatchHardTripletLoss", knobs='{"marginn": 2}'),
                       api_name="/train")


def test_an_upload_with_wrong_columns_names_the_expected_ones(client: Client, tmp_path: Path):
    path = tmp_path / "topics.csv"
    path.write_text("text,topic\nThe sun is hot.,1\nIt rains.,2\n")
    with pytest.raises(AppError) as error:
        client.predict(**train_inputs("BatchHardTripletLoss", upload=handle_file(str(path))),
                       api_name="/train")
    message = str(error.value)
    assert "topics.csv" in message and "expects columns [sentence, label (int)]" in message
    assert "missing sentence, label" in message


def test_a_binary_upload_is_refused_before_parsing(client: Client, tmp_path: Path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"PK\x03\x04\x00\x00binary\x00\xff\xfe" * 50)
    with pytest.raises(AppError, match=r"data\.csv: this is a binary file, not text"):
        client.predict(**train_inputs("BatchHardTripletLoss", upload=handle_file(str(path))),
                       api_name="/train")


def test_a_pickle_upload_is_refused(client: Client, tmp_path: Path):
    path = tmp_path / "data.pkl"
    path.write_bytes(b"\x80\x04\x95\x00\x00")
    with pytest.raises(AppError) as error:
        client.predict(**train_inputs("BatchHardTripletLoss", upload=handle_file(str(path))),
                       api_name="/train")
    assert ".csv" in str(error.value)


@pytest.mark.parametrize(("inputs", "message"), [
    ({"losses": ["CoSENTLoss"]}, "compare needs 2 to 4 losses; got 1"),
    ({"losses": ["CoSENTLoss", "CoSENTLoss"]}, "choose each loss once"),
    ({"losses": ["CoSENTLoss", "NoSuchLoss"]}, "Unknown loss 'NoSuchLoss'"),
    ({"steps": 1000}, "steps must be from 1 to 200; got 1000"),
])
def test_bad_compare_inputs_get_a_clear_error(client: Client, inputs: dict, message: str):
    request = {"losses": ["CoSENTLoss", "AnglELoss"], "model": "tiny", "steps": 2,
               "batch_size": 8, "seed": 0, **inputs}
    with pytest.raises(AppError) as error:
        client.predict(**request, api_name="/compare")
    assert message in str(error.value)


@pytest.mark.parametrize(("loss", "message"), [
    ("CachedMultipleNegativesRankingLoss", "needs a model, so it cannot move free points"),
    ("NoSuchLoss", "Unknown loss 'NoSuchLoss'"),
])
def test_the_playground_refuses_losses_it_cannot_run(client: Client, loss: str, message: str):
    with pytest.raises(AppError, match=message):
        client.predict(loss=loss, classes=3, per_class=5, seed=0, learning_rate=0.1,
                       optimizer="sgd", knobs="{}", links=False, api_name="/playground_reset")


def test_learn_describes_a_loss_and_refuses_an_unknown_one(client: Client):
    page = client.predict("TripletLoss", api_name="/describe")
    entry = catalog.get("TripletLoss")
    assert entry.formula in page and "triplet_margin" in page and "When to choose it" in page
    with pytest.raises(AppError, match="Unknown loss 'Triplet'"):
        client.predict("Triplet", api_name="/describe")
