"""The first thing ``make lab`` shows: the corpus as two built-in models see it.

Encodes the teaching corpus's paraphrases with the ``tiny`` and ``minilm`` models and writes an
embedding map of each (PCA, one colour per topic) to ``runs/<timestamp>/``. MiniLM, trained on a
billion sentence pairs, separates the topics; the untrained tiny model (averaged token vectors)
mostly does not: that gap is what the losses in this lab are for.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from lab.data import load_corpus, topics
from lab.metrics import knn_accuracy
from lab.models import load_model
from lab.viz import embedding_map

DEMO_MODELS = ("tiny", "minilm")


def run_demo(out_dir: Path | None = None, device: str | None = None) -> list[Path]:
    """Write one embedding-map PNG per demo model; return their paths."""
    out_dir = Path(out_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    out_dir.mkdir(parents=True, exist_ok=True)
    names = topics()
    groups = load_corpus()
    sentences = [text for group in groups for text in group.paraphrases]
    labels = np.array([names.index(group.topic) for group in groups for _ in group.paraphrases])
    group_ids = np.array([index for index, group in enumerate(groups) for _ in group.paraphrases])
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # weight loading is instant; keep the output clean
    print(f"Encoding {len(sentences)} sentences of {len(names)} topics from the teaching corpus")
    written = []
    for model_name in DEMO_MODELS:
        started = time.perf_counter()
        model = load_model(model_name, device=device)
        embeddings = model.encode(sentences, batch_size=64, convert_to_numpy=True)
        accuracy = knn_accuracy(embeddings, labels, k=5, groups=group_ids)
        figure = embedding_map(
            embeddings, labels, names,
            title=f"{model_name}: teaching corpus by topic (topic 5-NN accuracy {accuracy:.0%})",
        )
        path = out_dir / f"embedding-map-{model_name}.png"
        figure.savefig(path, dpi=120)
        written.append(path)
        print(f"  {model_name:7s} topic 5-NN accuracy {accuracy:.1%} "
              f"({time.perf_counter() - started:.1f} s) -> {path}")
    print(f"Wrote {len(written)} embedding maps to {out_dir}/")
    return written
