"""Checks esr-ea's exported ONNX files with tools nobody here wrote.

1. Every case written by `tests/units/onnx_export.rs::write_cases_for_onnxruntime`
   passes `onnx.checker.check_model(full_check=True)` and onnxruntime matches
   candle's output within 1e-4 at each of its input sizes (one file serves
   all sizes: batch, height and width are dynamic).
2. A photo upscaled by `esr-ea upscale` and by onnxruntime with the exported
   file differs by at most 1 grey level anywhere.

Usage: onnx_check.py CASES_DIR [PHOTO_LR.png PHOTO_SR_ESR_EA.png MODEL.onnx]
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def check_file(path):
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return model


def check_cases(root):
    lines = (root / "cases.txt").read_text().split("\n")
    cases = [line.split() for line in lines if line.strip()]
    if not cases:
        sys.exit(f"{root}/cases.txt lists no cases")
    sessions = {}
    for name, b, h, w, scale in cases:
        b, h, w, scale = int(b), int(h), int(w), int(scale)
        model_path = root / name / "model.onnx"
        if name not in sessions:
            check_file(model_path)
            sessions[name] = session(model_path)
        stem = f"{b}x{h}x{w}"
        x = np.fromfile(root / name / f"{stem}.input.f32", dtype="<f4").reshape(b, 3, h, w)
        want = np.fromfile(root / name / f"{stem}.expected.f32", dtype="<f4")
        want = want.reshape(b, 3, scale * h, scale * w)
        (got,) = sessions[name].run(None, {"lr": x})
        if got.shape != want.shape:
            sys.exit(f"{name} {stem}: onnxruntime gave shape {got.shape}, candle {want.shape}")
        worst = float(np.abs(got - want).max())
        status = "ok" if worst <= TOLERANCE else "FAIL"
        print(f"  {status}  {name:<14} {stem:<8} x{scale}  max |candle - onnxruntime| = {worst:.2e}")
        if worst > TOLERANCE:
            sys.exit(f"{name} {stem}: onnxruntime differs from candle by {worst:.3e} > {TOLERANCE}")
    print(f"onnx.checker (full) and onnxruntime {ort.__version__}: {len(sessions)} models, {len(cases)} cases within {TOLERANCE}")


def check_photo(lr_path, esr_path, onnx_path):
    from PIL import Image

    check_file(onnx_path)
    lr = np.asarray(Image.open(lr_path).convert("RGB"), dtype=np.float32) / 255.0
    x = np.ascontiguousarray(lr.transpose(2, 0, 1)[None])
    (sr,) = session(onnx_path).run(None, {"lr": x})
    ours = np.clip(np.rint(sr[0].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.int16)
    theirs = np.asarray(Image.open(esr_path).convert("RGB"), dtype=np.int16)
    if ours.shape != theirs.shape:
        sys.exit(f"photo: onnxruntime gave {ours.shape}, esr-ea upscale {theirs.shape}")
    diff = np.abs(ours - theirs)
    worst = int(diff.max())
    print(
        f"photo {Path(lr_path).name} {lr.shape[1]}x{lr.shape[0]} -> {theirs.shape[1]}x{theirs.shape[0]}: "
        f"max grey-level difference esr-ea upscale vs onnxruntime = {worst} "
        f"({int((diff > 0).sum())} of {diff.size} samples differ)"
    )
    if worst > 1:
        sys.exit(f"photo: esr-ea upscale and onnxruntime differ by {worst} grey levels (allowed: 1)")


def main():
    if len(sys.argv) not in (2, 5):
        sys.exit(__doc__)
    check_cases(Path(sys.argv[1]))
    if len(sys.argv) == 5:
        check_photo(*sys.argv[2:5])


if __name__ == "__main__":
    main()
