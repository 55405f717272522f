"""bench/models.py: the table it prints for a tiny config, and its verdicts on issue #4's targets."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "models.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_models", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tiny_config_gives_forward_and_train_rows_with_times_memory_and_target_lines(bench, tmp_path, capsys):
    md = tmp_path / "bench.md"
    code = bench.main(["--configs", "sgn_tiny", "--device", "cpu", "--dtypes", "fp32", "--train", "--repeats", "1",
                       "--warmup", "0", "--threads", "1", "--points", "2000", "--flops", "--live-tensors", "--markdown",
                       str(md)])
    assert code == 0
    out = capsys.readouterr().out
    assert "SGN-T at full resolution on one GPU in bf16: >= 20 frames/s: not measured" in out
    text = md.read_text()
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| sgn_tiny |")]
    columns = bench.COLUMNS
    assert [row[columns.index("mode")] for row in rows] == ["forward", "train"]
    for row in rows:
        median, fps = float(row[columns.index("median s")]), float(row[columns.index("frames/s")])
        assert median > 0 and fps == pytest.approx(1 / median, rel=0.1, abs=0.06)
        assert float(row[columns.index("peak mem GB")]) > 0
    forward_gflop, train_gflop = (float(row[columns.index("GFLOP")]) for row in rows)
    assert 0 < forward_gflop < train_gflop  # a training step adds the backward pass
    forward_peak, train_peak = (float(row[columns.index("tensor peak GB")]) for row in rows)
    assert 0 < forward_peak < train_peak  # saved activations, gradients and AdamW state
    assert "Targets:" in text


def test_a_distilled_students_training_row_runs_its_teacher_and_its_forward_costs_what_the_camera_models_does(
        bench, tmp_path, capsys):
    md = tmp_path / "l2cocc.md"
    code = bench.main(["--configs", "l2cocc_c_tiny", "l2cocc_d_tiny", "--device", "cpu", "--dtypes", "fp32",
                       "--train", "--repeats", "1", "--warmup", "0", "--threads", "1", "--points", "2000",
                       "--seed-fraction", "1", "--live-tensors", "--ratios", "l2cocc_c_tiny", "--markdown", str(md)])
    assert code == 0  # --seed-fraction is SGN's: models without seeds ignore it
    columns = bench.COLUMNS
    peaks = {}
    for line in md.read_text().splitlines():
        row = [c.strip() for c in line.strip("|").split("|")]
        if row[0] in ("l2cocc_c_tiny", "l2cocc_d_tiny"):
            assert row[columns.index("seeds")] == "—"
            peaks[row[0], row[columns.index("mode")]] = float(row[columns.index("tensor peak GB")])
    # the same network on the same batch: the same live tensors; training adds the frozen teacher and its outputs
    assert peaks["l2cocc_d_tiny", "forward"] == peaks["l2cocc_c_tiny", "forward"]
    assert peaks["l2cocc_d_tiny", "train"] > peaks["l2cocc_c_tiny", "train"]
    out = capsys.readouterr().out
    assert "l2cocc_d_tiny cpu fp32 forward: CPU s " in out and "tensor peak 1.00x l2cocc_c_tiny" in out


def test_target_verdicts_compare_the_right_row_against_each_limit(bench):
    def result(config, device, dtype, mode, seconds, peak_gb=1.0):
        r = bench.Result(config, device, dtype, mode, 1.0, 1.0, "")
        r.times_s, r.peak_bytes = [seconds], int(peak_gb * 1e9)
        return r

    lines = bench.target_lines([result("sgn_t", "cuda", "bf16", "forward", 0.04),
                                result("sgn_t", "cuda", "fp32", "forward", 0.5),
                                result("sgn_l", "cuda", "fp32", "train", 0.3, peak_gb=7.5),
                                result("sgn_l", "cpu", "fp32", "forward", 4.9)])
    assert lines[0].endswith("25.00 frames/s, met")
    assert lines[1].endswith("7.50 GB, NOT met")
    assert lines[2].endswith("4.90 s, met")
    failed = result("sgn_t", "cuda", "bf16", "forward", 0.04)
    failed.times_s, failed.error = [], "RuntimeError: out of memory"
    assert "not measured (RuntimeError: out of memory)" in bench.target_lines([failed])[0]


def test_ratios_divide_each_row_by_the_reference_rows_of_the_same_device_dtype_and_mode(bench):
    def result(config, mode, seconds, tensor_gb, device="cpu"):
        r = bench.Result(config, device, "fp32", mode, 1.0, 1.0, "")
        r.times_s, r.tensor_peak_bytes = [10 * seconds], int(tensor_gb * 1e9)  # wall: a loaded machine
        r.cpu_s = [seconds] if device == "cpu" else []
        return r

    rows = [result("sgn_t", "forward", 2.0, 4.0), result("htcl", "forward", 8.0, 10.0),
            result("l2cocc_d", "forward", 4.0, 5.0), result("l2cocc_d", "train", 9.0, 9.0),
            result("sgn_t", "forward", 0.5, 1.0, device="cuda"), result("l2cocc_d", "forward", 1.0, 1.0, device="cuda")]
    rows[0].times_s = [50.0]  # the reference's wall time was inflated more: CPU rows compare CPU seconds
    assert bench.ratio_lines(rows, ["sgn_t", "htcl"]) == [
        "l2cocc_d cpu fp32 forward: CPU s 2.00x sgn_t, 0.50x htcl; tensor peak 1.25x sgn_t, 0.50x htcl",
        "l2cocc_d cuda fp32 forward: latency 2.00x sgn_t; tensor peak 1.00x sgn_t"]


def test_depth_rows_time_sgbm_and_mobilestereonet_from_a_stereo_pair_to_points(bench, tmp_path, capsys):
    md = tmp_path / "depth.md"
    code = bench.main(["--configs", "--depth", "sgbm", "msnet3d", "--depth-size", "48", "256", "--device", "cpu",
                       "--dtypes", "fp32", "--repeats", "1", "--warmup", "0", "--threads", "1", "--live-tensors",
                       "--markdown", str(md)])
    assert code == 0, capsys.readouterr().err
    columns = bench.COLUMNS
    rows = {row[0]: row for row in ([c.strip() for c in line.strip("|").split("|")]
                                    for line in md.read_text().splitlines() if line.startswith("| depth:"))}
    assert set(rows) == {"depth: sgbm", "depth: msnet3d"}
    assert rows["depth: msnet3d"][columns.index("params M (trained)")] == "1.77 (0.00)"
    assert "net 64×256" in rows["depth: msnet3d"][columns.index("grid / image / frames / points")]
    for row in rows.values():
        assert row[columns.index("mode")] == "depth" and float(row[columns.index("median s")]) > 0
    assert float(rows["depth: msnet3d"][columns.index("tensor peak GB")]) > 0
    assert rows["depth: sgbm"][columns.index("tensor peak GB")] == "—"  # OpenCV's buffers are not torch tensors


def test_htcl_tiny_row_gives_our_parameter_count_beside_the_analytic_one(bench, tmp_path):
    md = tmp_path / "htcl.md"
    code = bench.main(["--configs", "htcl_tiny", "--device", "cpu", "--dtypes", "fp32", "--repeats", "1",
                       "--warmup", "0", "--threads", "1", "--points", "2000", "--markdown", str(md)])
    assert code == 0
    (row,) = [[c.strip() for c in line.strip("|").split("|")] for line in md.read_text().splitlines()
              if line.startswith("| htcl_tiny |")]
    columns = bench.COLUMNS
    assert row[columns.index("mode")] == "forward" and float(row[columns.index("median s")]) > 0
    ours = row[columns.index("params M (trained)")].split()[0]  # "6.43 (6.43)": all (trainable)
    assert ours == row[columns.index("analytic M")] and float(ours) == pytest.approx(6.43, abs=0.01)


def _table_rows(md: Path, prefix: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in md.read_text().splitlines()
            if line.startswith(f"| {prefix}")]


def test_cleaners_rows_run_on_an_rgbd_batch_and_the_students_training_row_runs_its_teacher(bench, tmp_path):
    columns = bench.COLUMNS
    md = tmp_path / "teacher.md"
    assert bench.main(["--configs", "cleaners_teacher_tiny", "--device", "cpu", "--dtypes", "fp32", "--repeats", "1",
                       "--warmup", "0", "--threads", "1", "--markdown", str(md)]) == 0
    (row,) = _table_rows(md, "cleaners_teacher_tiny |")
    assert row[columns.index("mode")] == "forward" and float(row[columns.index("median s")]) > 0
    shape = row[columns.index("grid / image / frames / points")]
    assert shape == "60×36×60 @ 0.08 m / RGB-D 640×480 → 160×120 / 1 / no LiDAR"
    md = tmp_path / "student.md"
    assert bench.main(["--configs", "cleaners_student_tiny", "--device", "cpu", "--dtypes", "fp32", "--train",
                       "--no-forward", "--repeats", "1", "--warmup", "0", "--threads", "1", "--markdown", str(md)]) == 0
    (row,) = _table_rows(md, "cleaners_student_tiny |")
    assert row[columns.index("mode")] == "train" and float(row[columns.index("median s")]) > 0
    assert bench.DISTILL_TEACHERS["cleaners_student_tiny"] == "cleaners_teacher_tiny"
    assert bench.DISTILL_TEACHERS["cleaners_student"] == "cleaners_teacher"


def test_the_cleaners_teacher_in_the_students_training_step_reads_tsdf_cad_and_adds_the_kd_losses(bench):
    import torch

    cfg = bench.load_configs(["cleaners_student_tiny"])["cleaners_student_tiny"]
    torch.manual_seed(0)
    student = bench.build_model(cfg).eval()
    hook = bench.build_bench_teacher("cleaners_student_tiny", cfg)
    batch = bench.make_batch(cfg, 0, with_targets=True)
    assert torch.equal(batch["tsdf_cad"], batch["tsdf"])  # the bench's wall depth is noise-free
    batch["tsdf_cad"] = -batch["tsdf"]  # so the teacher's input can be told from the student's
    with torch.no_grad():
        outputs = student(batch)
        on_cad = hook.teacher(hook.teacher_batch(batch))["ssc_logits"]
        on_noisy = hook.teacher(batch)["ssc_logits"]
    assert not torch.allclose(on_cad, on_noisy)
    assert torch.equal(hook.teacher_outputs(batch)["ssc_logits"], on_cad)
    losses = hook.kd_losses(outputs, batch, bench.BenchAutocast(torch.device("cpu"), None))
    assert set(losses) == {"loss_kd_t", "loss_kd_sc", "loss_kd_sa"}
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())
