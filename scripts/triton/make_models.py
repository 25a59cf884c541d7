#!/usr/bin/env python3
"""Builds the Triton model repository that the tests, benches and the quick start use.

Usage: make_models.py OUT_DIR

Copies each model's config.pbtxt and model.py from scripts/triton/models/ and builds the image
model's weights: a small random-weight CNN written as ONNX with the `onnx` package alone (no torch),
`images` FP32 [N,3,224,224] -> `logits` FP32 [N,1000]. The seed is fixed, so the file is the same on
every machine.
"""
import os
import shutil
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("identity", "image", "faulty")


def tiny_cnn(seed: int = 7) -> onnx.ModelProto:
    """Two strided convolutions, global pooling and a dense layer: cheap on a CPU, real work per byte."""
    rng = np.random.default_rng(seed)

    def weight(name, shape, fan_in):
        data = (rng.standard_normal(shape) / np.sqrt(fan_in)).astype(np.float32)
        return numpy_helper.from_array(data, name)

    inits = [
        weight("c1_w", (16, 3, 7, 7), 3 * 49),
        weight("c1_b", (16,), 1),
        weight("c2_w", (32, 16, 3, 3), 16 * 9),
        weight("c2_b", (32,), 1),
        weight("fc_w", (32, 1000), 32),
        weight("fc_b", (1000,), 1),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "c1_w", "c1_b"], ["c1"], strides=[4, 4], pads=[3, 3, 3, 3]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2_w", "c2_b"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "kis_tiny_cnn",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime of the last few years
    onnx.checker.check_model(model)
    return model


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: make_models.py OUT_DIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    for name in MODELS:
        src = os.path.join(HERE, "models", name)
        dst = os.path.join(out, name)
        os.makedirs(os.path.join(dst, "1"), exist_ok=True)
        shutil.copy(os.path.join(src, "config.pbtxt"), os.path.join(dst, "config.pbtxt"))
        shutil.copy(os.path.join(src, "model.py"), os.path.join(dst, "1", "model.py"))
    onnx.save(tiny_cnn(), os.path.join(out, "image", "1", "model.onnx"))
    print(f"models written to {out}: {', '.join(MODELS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
