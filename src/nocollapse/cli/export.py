"""``nocollapse export RUN_DIR``: the trained backbone as safetensors (or TorchScript) + JSON."""

from __future__ import annotations

import argparse

from nocollapse.models.export import FORMATS, description_path
from nocollapse.posthoc.export import export_run

EPILOG = """examples:
  nocollapse export runs/default                  # runs/default/export/backbone.safetensors
  nocollapse export runs/byol --target --out byol-target.safetensors
  nocollapse export runs/default --format torchscript
  nocollapse export runs/default --force          # replace the export written before

in Python (plain PyTorch, nothing unpickled):
  import nocollapse
  backbone = nocollapse.load_backbone("runs/default/export/backbone.safetensors")
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export", help="write a run's trained backbone (safetensors or TorchScript) with a JSON",
        description="Write the backbone of RUN_DIR's last checkpoint (the online encoder, or "
        "the target network with --target) and a JSON description beside it: architecture "
        "and its arguments, input size and channels, normalisation, the run's final "
        "evaluation, and the SHA-256 that ties the two files together. "
        "nocollapse.load_backbone(FILE) reads the safetensors file back as a plain "
        "torch.nn.Module without unpickling anything.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by train")
    parser.add_argument("--out", metavar="FILE", help="weights file to write (default "
                        "RUN_DIR/export/backbone.safetensors, or backbone-target, or .pt)")
    parser.add_argument("--format", default="safetensors",
                        help=f"{' | '.join(FORMATS)} (default safetensors; TorchScript "
                        "archives hold code and load with torch.jit.load)")
    parser.add_argument("--target", action="store_true",
                        help="export the target network's backbone (runs with an EMA target)")
    parser.add_argument("--data-dir", help="folder holding the run's data set, when it has "
                        "moved since training (read for the image size and channels)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing export of that name (never a run's own "
                        "files: inside a run directory, export writes only to its export/)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    path = export_run(args.run_dir, args.out, args.format, args.target, args.data_dir,
                      args.force)
    print(f"nocollapse export: wrote {path} and {description_path(path)}")
    return 0
