"""The whole wildsep pipeline on the built-in demo corpus, in minutes on a CPU.

    python -m wildsep.quickstart [--data demo_data] [--runs runs]

Every step is a recipe a user runs on their own data; each prints its stand-alone command:

1. generate the demo corpus        python -m wildsep.data.demo demo_data
2. unsupervised pre-training       accelerate launch pretrain/run.py configs/demo_pretrain.yaml
3. TUSS fine-tuning from it        accelerate launch finetune/tuss.py configs/demo_tuss.yaml \\
                                       --init runs/demo_pretrain
4. separate a test mixture         wildsep separate MIX --model runs/demo_tuss/model --prompts ...
5. evaluate on the test set        python -m wildsep.evaluate runs/demo_tuss/model --set ...

Re-running continues where it stopped (finished runs are not trained again).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"


def banner(number: int, title: str, command: str) -> None:
    print(f"\n=== {number}. {title}\n    $ {command}", flush=True)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("demo_data"), help="demo corpus folder")
    parser.add_argument("--runs", type=Path, default=Path("runs"), help="where runs are written")
    parser.add_argument("--small", action="store_true", help="the tiny demo corpus (for tests)")
    parser.add_argument(
        "overrides", nargs="*", help="pretrain.KEY=VALUE or finetune.KEY=VALUE config overrides"
    )
    args = parser.parse_args(argv)
    if not CONFIGS.is_dir():
        sys.exit(f"error: {CONFIGS} not found; run the quickstart from a clone of the repository")
    start = time.perf_counter()

    from wildsep.data.demo import generate

    small = " --small" if args.small else ""
    banner(1, "demo corpus", f"python -m wildsep.data.demo {args.data}{small}")
    data = generate(args.data, size="small" if args.small else "default", progress=True)

    from finetune.tuss import main as finetune
    from pretrain.run import main as pretrain

    def recipe_overrides(prefix: str, run: Path, source_key: str, source: Path) -> list[str]:
        own = [o.removeprefix(prefix) for o in args.overrides if o.startswith(prefix)]
        manifest = f"validation.manifest={data / 'valid' / 'manifest.jsonl'}"
        return [f"run_dir={run}", f"{source_key}={source}", manifest, *own]

    pretrain_run = args.runs / "demo_pretrain"
    banner(
        2,
        "unsupervised pre-training (MixIT + sparsity)",
        "accelerate launch pretrain/run.py configs/demo_pretrain.yaml",
    )
    pretrain(
        [
            str(CONFIGS / "demo_pretrain.yaml"),
            *recipe_overrides("pretrain.", pretrain_run, "data.corpus.source", data / "unlabeled"),
        ]
    )

    tuss_run = args.runs / "demo_tuss"
    banner(
        3,
        "TUSS fine-tuning initialised from the backbone",
        f"accelerate launch finetune/tuss.py configs/demo_tuss.yaml --init {pretrain_run}",
    )
    finetune(
        [
            str(CONFIGS / "demo_tuss.yaml"),
            "--init",
            str(pretrain_run),
            *recipe_overrides("finetune.", tuss_run, "data.pools.source", data / "pools"),
        ]
    )

    from wildsep.cli import main as wildsep_cli

    test_set = data / "test" / "manifest.jsonl"
    first = json.loads(test_set.read_text().splitlines()[0])
    mixture, prompts = test_set.parent / first["mixture"], first["classes"]
    separated = args.runs / "demo_separated"
    separate_args = [
        "separate",
        str(mixture),
        "--model",
        str(tuss_run / "model"),
        "--prompts",
        *prompts,
        "--out",
        str(separated),
    ]
    banner(4, "separate a test mixture", "wildsep " + " ".join(separate_args))
    code = wildsep_cli(separate_args)
    if code:
        sys.exit(code)

    from wildsep.evaluate import evaluate, to_markdown

    banner(
        5,
        "evaluate on the demo test set",
        f"python -m wildsep.evaluate {tuss_run / 'model'} --set {test_set}",
    )
    result = evaluate(tuss_run / "model", test_set, out=tuss_run / "eval_test", progress=True)
    print(to_markdown(result))
    minutes = (time.perf_counter() - start) / 60
    print(
        f"\ndone in {minutes:.1f} min: separated audio in {separated}, TensorBoard logs in "
        f"{args.runs}/*/tensorboard, results in {tuss_run / 'eval_test'}"
    )
    return result


if __name__ == "__main__":
    main()
