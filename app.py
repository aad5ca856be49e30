"""The lab's Gradio app (also the Hugging Face Space entry point).

So far it has the Learn tab: every loss of the catalog with its explanation, formula, data
format and knobs. Live training, comparison and the 2-D playground come next, built on
``lab.train``; until then ``make lab`` runs the embedding-map demo instead (``python -m lab demo``).
Run this app with ``python app.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from lab import catalog
from lab.data.formats import FORMATS
from lab.data.validate import expected_columns_text


def describe(name: str) -> str:
    """Markdown page of one loss: what it does, its formula, the data it takes and its knobs."""
    entry = catalog.get(name)
    formats = "\n".join(
        f"- `{fmt}`: {FORMATS[fmt].description} — columns {expected_columns_text(FORMATS[fmt])}"
        for fmt in entry.formats
    )
    knobs = "\n".join(
        f"- `{knob.name}` (default `{knob.default}`): {knob.help}" for knob in entry.knobs
    ) or "- none"
    paper = f"\n\n**Paper:** {entry.paper}" if entry.paper else ""
    return (
        f"## {entry.name}\n\n*Family: {entry.family}*\n\n{entry.explanation}\n\n"
        f"**Formula**\n\n```\n{entry.formula}\n```\n\n**Data formats**\n\n{formats}\n\n"
        f"**Knobs**\n\n{knobs}{paper}"
    )


def build_app() -> gr.Blocks:
    """The Gradio Blocks of the app."""
    with gr.Blocks(title="Embedding Loss Lab") as app:
        gr.Markdown(
            "# Embedding Loss Lab\nWhat each loss for sentence-embedding models does, and what "
            "data it needs. Live training and the playground are being built."
        )
        with gr.Tab("Learn"):
            choice = gr.Dropdown(
                choices=[(f"{entry.family} · {entry.name}", entry.name)
                         for entry in catalog.LOSSES.values()],
                value=next(iter(catalog.LOSSES)),
                label="Loss",
            )
            page = gr.Markdown(describe(next(iter(catalog.LOSSES))))
            choice.change(describe, inputs=choice, outputs=page)
    return app


if __name__ == "__main__":
    build_app().launch(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
