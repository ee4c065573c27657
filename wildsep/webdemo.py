"""`wildsep demo --model DIR`: a local web page to try a model (Gradio).

Upload or record a mixture, choose prompts (a prompt given twice gives two outputs of that
kind), separate, then listen to, download and look at (spectrogram) every output. Problems
with an upload (not audio, empty, too long) show as a one-line error on the page, never a
stack trace. The page is served on this machine only (127.0.0.1 by default); Gradio's
analytics are switched off and no share link is ever created. See docs/separate.md#a-demo-page.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch.nn import functional as F

from wildsep.inference import CheckpointError, Separator

MAX_OUTPUTS = 8  # output slots on the page; TUSS trains on up to 4 prompts and handles 5
DEFAULT_MAX_SECONDS = 300.0
SPECTROGRAM_DB_RANGE = 80.0


def spectrogram_image(audio: np.ndarray, sample_rate: int, max_frames: int = 1000) -> np.ndarray:
    """(T,) audio → (F, frames, 3) uint8 RGB log-magnitude spectrogram: a Hann window of about
    32 ms, at most `max_frames` frames, low frequencies at the bottom, the top
    `SPECTROGRAM_DB_RANGE` dB mapped through the magma colour map."""
    from matplotlib import colormaps

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    n_fft = 1 << max(4, round(math.log2(0.032 * sample_rate)))
    x = F.pad(x, (0, max(0, n_fft - x.numel())))
    hop = max(n_fft // 4, math.ceil(x.numel() / max_frames))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec + 1e-8)
    level = ((db - db.max()) / SPECTROGRAM_DB_RANGE + 1).clamp(0, 1).flip(0).numpy()
    return (colormaps["magma"](level)[..., :3] * 255).astype(np.uint8)


def read_upload(path: str | None, max_seconds: float) -> tuple[np.ndarray, int]:
    """An uploaded or recorded file as (C, T) float32 and its rate; ValueError with a reason."""
    from wildsep.data.audio_io import read_audio

    if not path:
        raise ValueError("upload or record a mixture first")
    audio, rate = read_audio(Path(path))
    if not np.isfinite(audio).all():
        raise ValueError("the audio contains NaN or infinite samples")
    if audio.shape[-1] > max_seconds * rate:
        raise ValueError(
            f"the audio is {audio.shape[-1] / rate:.0f} s long; this demo takes up to "
            f"{max_seconds:.0f} s (wildsep demo --max-seconds, or use wildsep separate)"
        )
    return audio, rate


def parse_prompts(text: str | None) -> list[str]:
    """'speech, speech sfx' → ['speech', 'speech', 'sfx']: commas or spaces, order kept."""
    return [p for p in (text or "").replace(",", " ").split() if p]


class DemoApp:
    """The page for one `Separator`; outputs go to a temporary folder removed by `close`."""

    def __init__(self, separator: Separator, name: str, max_seconds: float = DEFAULT_MAX_SECONDS):
        _quiet_gradio()
        self.separator = separator
        self.name = name
        self.max_seconds = max_seconds
        self.workdir = Path(tempfile.mkdtemp(prefix="wildsep-demo-"))
        self.blocks = self._build()

    def separate(self, path: str | None, prompt_text: str | None) -> list[Any]:
        """The page's callback: one (audio, spectrogram) update pair per output slot."""
        import gradio as gr

        prompts = None if self.separator.prompts is None else parse_prompts(prompt_text)
        try:
            names = self.separator.output_names(prompts)
            if len(names) > MAX_OUTPUTS:
                raise ValueError(f"at most {MAX_OUTPUTS} outputs on this page; got {len(names)}")
            audio, rate = read_upload(path, self.max_seconds)
            stems = self.separator.separate(audio, rate, prompts)  # (K, C, T)
        except ValueError as err:
            upload = f"{Path(path).name}: " if path else ""
            raise gr.Error(f"{upload}{err}", print_exception=False) from None
        folder = self.workdir / uuid.uuid4().hex
        folder.mkdir()
        updates: list[Any] = []
        for k in range(MAX_OUTPUTS):
            if k >= len(names):
                updates += [gr.update(visible=False, value=None)] * 2
                continue
            file = folder / f"{names[k]}.wav"
            sf.write(str(file), stems[k].T, rate, subtype="FLOAT")
            image = spectrogram_image(stems[k].mean(0), rate)
            updates += [
                gr.update(value=str(file), label=names[k], visible=True),
                gr.update(value=image, label=f"{names[k]} spectrogram", visible=True),
            ]
        return updates

    def _build(self) -> Any:
        import gradio as gr

        prompts = self.separator.prompts
        model = type(self.separator.model).__name__
        with gr.Blocks(title="wildsep demo", analytics_enabled=False) as blocks:
            gr.Markdown(
                f"# wildsep: {self.name}\n{model}, {self.separator.sample_rate} Hz. "
                + (
                    f"Prompts: {', '.join(f'`{p}`' for p in prompts)} — repeat one for several "
                    "outputs of that kind (`speech, speech, sfxbg`)."
                    if prompts
                    else f"Unconditional: {self.separator.n_outputs(None)} outputs."
                )
            )
            mixture = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Mixture")
            with gr.Row(visible=prompts is not None):
                text = gr.Textbox(
                    value=", ".join(prompts[:2]) if prompts else "",
                    label="Prompts",
                    info="one output per prompt, in order; commas or spaces",
                    elem_id="prompts",
                    scale=3,
                )
                choice = gr.Dropdown(
                    choices=list(prompts or []), label="Add a prompt", elem_id="add-choice"
                )
                add = gr.Button("Add", elem_id="add-prompt", scale=0)
            button = gr.Button("Separate", variant="primary", elem_id="separate")
            slots = []
            for k in range(MAX_OUTPUTS):
                with gr.Row():
                    slots.append(
                        gr.Audio(
                            type="filepath",
                            interactive=False,
                            visible=False,
                            buttons=["download"],
                            elem_id=f"output-{k}",
                        )
                    )
                    slots.append(
                        gr.Image(
                            interactive=False,
                            visible=False,
                            format="png",
                            height=240,
                            elem_id=f"spectrogram-{k}",
                        )
                    )
            add.click(lambda t, c: f"{t}, {c}" if t and c else (c or t), [text, choice], text)
            button.click(self.separate, [mixture, text], slots)
        return blocks

    def launch(self, host: str = "127.0.0.1", port: int | None = None, block: bool = True):
        """Serve the page; returns (app, local URL, share URL = None)."""
        return self.blocks.launch(
            server_name=host,
            server_port=port,
            share=False,
            prevent_thread_lock=not block,
            quiet=not block,
            ssr_mode=False,
            mcp_server=False,
            footer_links=[],
            allowed_paths=[str(self.workdir)],
            theme=_offline_theme(),
        )

    def close(self) -> None:
        self.blocks.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _offline_theme() -> Any:
    """Gradio's default theme with system fonts: its default fetches fonts from the web."""
    import gradio as gr

    system = ["ui-sans-serif", "system-ui", "sans-serif"]
    return gr.themes.Default(font=system, font_mono=["ui-monospace", "monospace"])


def _quiet_gradio() -> None:
    """No analytics or version checks: set before gradio is imported."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="exported model folder, run folder or hub org/name"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--device", default=None, help="cpu, cuda (default: GPU if any)")
    parser.add_argument(
        "--max-seconds", type=float, default=DEFAULT_MAX_SECONDS, help="longest upload"
    )


def run_command(args: argparse.Namespace) -> int:
    """`wildsep demo`: serves until interrupted; returns the exit status."""
    _quiet_gradio()
    try:
        import gradio  # noqa: F401
    except ImportError:
        print("wildsep: error: the demo needs gradio: pip install 'wildsep[demo]'", file=sys.stderr)
        return 2
    try:
        separator = Separator.from_pretrained(args.model, device=args.device)
    except (CheckpointError, ValueError) as err:
        print(f"wildsep: error: {err}", file=sys.stderr)
        return 2
    app = DemoApp(separator, str(args.model), args.max_seconds)
    try:
        app.launch(args.host, args.port, block=True)
    except KeyboardInterrupt:
        pass
    finally:
        app.close()
    return 0
