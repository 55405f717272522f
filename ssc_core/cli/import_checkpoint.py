"""``ssc-import-checkpoint``: turn a checkpoint published with a method's official code into a checkpoint of
this project, which ``ssc-infer``, ``ssc-eval`` runs, ``ssc-bag`` and the ROS node load like a trained one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssc_core.cli.entry import run_and_report
from ssc_core.config import load_config
from ssc_core.convert import Converter, get_converter, list_converters
from ssc_core.convert.official import read_official_state
from ssc_core.errors import ConfigError
from ssc_core.output_paths import ensure_output_file
from ssc_core.training.checkpoint import atomic_torch_save


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; its help lists every registered converter."""
    methods = "\n".join(f"  {c.method:<9} {c.summary}" for c in list_converters())
    parser = argparse.ArgumentParser(
        prog="ssc-import-checkpoint",
        description="Convert an official checkpoint (mmcv/mmdet3d or plain torch.save files, 'module.' prefixes "
        "allowed) into this project's checkpoint format: every official key is mapped, layouts that differ are "
        "re-ordered, layers the official model builds but never runs are dropped and listed; any other unknown "
        "or missing key is an error naming the keys. Files are read with torch.load(weights_only=True).",
        epilog=f"methods:\n{methods}\n\nexamples:\n"
        "  ssc-import-checkpoint --method msnet3d --input MSNet3D_SF_DS_KITTI2015.ckpt --output msnet3d.pt\n"
        "  ssc-import-checkpoint --method sgn --config sgn_t --input sgn-t.pth --output sgn_t.pt "
        "--depth-weights msnet3d.pt\n"
        "  ssc-import-checkpoint --method sgn --config sgn_t --input sgn-t.pth --output sgn_t_files.pt "
        "--depth-files /data/semantic_kitti/dataset/msnet3d_depth\n"
        "  ssc-import-checkpoint --method htcl --config htcl --input htcl.pth --output htcl.pt\n"
        "  ssc-import-checkpoint --method cleaners --config cleaners_student --input CleanerS_ckpt.pth "
        "--output cleaners_student.pt\n"
        "exit codes: 0 = written, 2 = bad input (the message names the file or keys)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--method", required=True, choices=[c.method for c in list_converters()],
                        help="which official code wrote the file (see the list below)")
    parser.add_argument("--config", help="config name or YAML path of the matching variant (SSC methods: e.g. "
                        "sgn_t, sgn_l, sgn_s, sgn_t_kitti360, htcl, cleaners_student, cleaners_teacher); it is "
                        "stored in the output")
    parser.add_argument("--input", required=True, type=Path, help="the official checkpoint file")
    parser.add_argument("--output", required=True, type=Path, help="checkpoint to write (.pt)")
    depth = parser.add_mutually_exclusive_group()
    depth.add_argument("--depth-weights", type=Path,
                       help="methods with a depth source (sgn): a stereo checkpoint from --method msnet3d; the "
                       "stored config then takes its points from MobileStereoNet (data.points.source: "
                       "stereo_msnet), as the published models were trained")
    depth.add_argument("--depth-files", type=Path,
                       help="methods with a depth source (sgn): a folder of MobileStereoNet depth maps "
                       "(sequences/<seq>/NNNNNN.npy, from ssc-precompute-depth or SGN's preprocessing); the stored "
                       "config then reads them (data.points.source: precomputed), the same points without running "
                       "the network")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="read files holding Python objects besides tensors (full unpickling can run code "
                        "stored in the file: only for files from a source you trust)")
    return parser


def _config(args: argparse.Namespace, converter: Converter) -> dict | None:
    if not converter.needs_config and args.config:
        raise ConfigError(f"--method {args.method} takes no --config")
    if not converter.depth_source:
        for flag, value in (("--depth-weights", args.depth_weights), ("--depth-files", args.depth_files)):
            if value:
                raise ConfigError(f"--method {args.method} takes no {flag} (its model has no configurable depth "
                                  "source)")
    if not converter.needs_config:
        return None
    if not args.config:
        raise ConfigError(f"--method {args.method} needs --config (the variant the file was trained as)")
    overrides = None
    if args.depth_weights is not None:
        from ssc_core.models.stereo.msnet import load_stereo_model

        load_stereo_model(args.depth_weights)  # fail now, not at the first prediction
        overrides = {"data": {"points": {"source": "stereo_msnet",
                                         "msnet": {"weights": str(args.depth_weights.resolve())}}}}
    elif args.depth_files is not None:
        if not args.depth_files.is_dir():
            raise ConfigError(f"--depth-files {args.depth_files}: not a folder")
        overrides = {"data": {"points": {"source": "precomputed", "folder": str(args.depth_files.resolve()),
                                         "format": "npy"}}}
    return load_config(args.config, overrides)


def run(args: argparse.Namespace) -> dict:
    """Convert and write as ``args`` say. Returns a summary; prints the dropped keys."""
    converter = get_converter(args.method)
    config = _config(args, converter)
    ensure_output_file(args.output, "--output")
    if args.output.exists() and not args.overwrite:
        raise ConfigError(f"--output {args.output} exists; pass --overwrite to replace it")
    state, _ = read_official_state(args.input, trust_pickle=args.trust_pickle)
    conversion = converter.convert(state, config)
    conversion.checkpoint["imported_from"] = {"method": args.method, "file": args.input.name}
    atomic_torch_save(conversion.checkpoint, args.output)
    for key, reason in conversion.dropped.items():
        print(f"dropped {key}: {reason}")
    summary = {"method": args.method, "keys_converted": len(state) - len(conversion.dropped),
               "keys_dropped": len(conversion.dropped), "output": str(args.output)}
    source = ((config or {}).get("data") or {}).get("points", {}).get("source")
    if converter.depth_source and source not in ("stereo_msnet", "precomputed"):
        summary["note"] = (f"the stored config takes points from {source!r}; the published models were trained on "
                           "MobileStereoNet depth (--depth-weights, or --depth-files with ssc-precompute-depth's "
                           "files)")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 on success, 2 with ``error: ...`` on bad input."""
    return run_and_report(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
