"""Test-wide settings: everything offline, nothing phones home."""

from __future__ import annotations

import os

# Set before any test imports huggingface_hub, transformers or gradio (they read these once).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
