"""onnxruntime's RMBG-1.4 masks for the test photos: the ground truth the Rust test compares to.

For each photo writes, under OUT_DIR: NAME.input.npy (the preprocessed [1, 3, 1024, 1024] f32
input: RGB resized bilinearly to 1024², /255, minus 0.5), NAME.ort.npy (onnxruntime's mask
probability [1024, 1024] f32), NAME.ort.png (that mask, min–max normalised, 8-bit) and
NAME.mask.png: the mask at the photo's size, made the way nobg makes it, so that comparing it
with `nobg --only-mask` measures the model and not two resizers: min–max stretch at 1024² (as
the rmbg-1.4 preset does), then Pillow's bicubic on the float map (mode "F": nobg-matting's
`alpha_from_probabilities` is that filter, checked against it in crates/matting/tests/io_mask.rs),
then round(255 * p) clamped. The input resize is Pillow's BILINEAR, which nobg-matting's
`resize_bilinear` matches (crates/matting/tests/io_preprocess.rs).

usage: reference.py MODEL.onnx OUT_DIR PHOTO...
"""

import os
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

SIZE = 1024


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: reference.py MODEL.onnx OUT_DIR PHOTO...")
    model, out_dir, photos = sys.argv[1], sys.argv[2], sys.argv[3:]
    os.makedirs(out_dir, exist_ok=True)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    for photo in photos:
        name = os.path.splitext(os.path.basename(photo))[0]
        rgb = Image.open(photo).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR)
        x = (np.asarray(rgb, np.float32) / 255.0 - 0.5).transpose(2, 0, 1)[None]
        x = np.ascontiguousarray(x)
        mask = session.run(["output"], {"input": x})[0][0, 0].astype(np.float32)
        np.save(os.path.join(out_dir, f"{name}.input.npy"), x)
        np.save(os.path.join(out_dir, f"{name}.ort.npy"), mask)
        lo, hi = float(mask.min()), float(mask.max())
        norm = (mask - lo) / max(hi - lo, 1e-12)
        Image.fromarray(np.round(norm * 255).astype(np.uint8)).save(
            os.path.join(out_dir, f"{name}.ort.png"))
        width, height = Image.open(photo).size
        at_photo = np.asarray(
            Image.fromarray(norm.astype(np.float32)).resize((width, height), Image.BICUBIC))
        alpha = np.clip(np.round(at_photo * 255.0), 0, 255).astype(np.uint8)
        Image.fromarray(alpha).save(os.path.join(out_dir, f"{name}.mask.png"))
        c = SIZE // 2
        print(f"reference.py: {name}: corner {norm[8, 8]:.3f} centre {norm[c, c]:.3f}")


if __name__ == "__main__":
    main()
