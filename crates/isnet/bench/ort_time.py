"""Time of one forward pass of an ONNX model in onnxruntime (CPU), the onnxruntime side of
vs_onnxruntime.sh. Prints one JSON line like the nobg `forward_time` example.

usage: ort_time.py MODEL.onnx INPUT.npy ITERS THREADS [SAVE_MASK.npy]
"""

import json
import resource
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    model, x_path, iters, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    x = np.load(x_path)
    name = session.get_inputs()[0].name
    mask = session.run(None, {name: x})[0]
    if len(sys.argv) > 5:
        np.save(sys.argv[5], mask.astype(np.float32))
    wall, cpu = [], []
    for _ in range(iters):
        t, c = time.perf_counter(), time.process_time()
        session.run(None, {name: x})
        wall.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    print(json.dumps({
        "impl": "onnxruntime " + ort.__version__,
        "size": x.shape[2],
        "threads": threads,
        "wall_ms": round(float(np.median(wall)), 1),
        "cpu_ms": round(float(np.median(cpu)), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "wall_all_ms": [round(w) for w in wall],
    }))


if __name__ == "__main__":
    main()
