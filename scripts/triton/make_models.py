#!/usr/bin/env python3
"""Builds the Triton model repository that the tests, benches and the quick start use.

Usage: make_models.py OUT_DIR
       make_models.py --emulated LATENCY_TABLE OUT_DIR

Copies each model's config.pbtxt and model.py from scripts/triton/models/ and builds the image
model's weights: a small random-weight CNN written as ONNX with the `onnx` package alone (no torch),
`images` FP32 [N,3,224,224] -> `logits` FP32 [N,1000]. The seed is fixed, so the file is the same on
every machine.

With --emulated, writes only the emulated accelerator (scripts/triton/emulated/: a model whose
compute is a wait drawn from a latency table) into OUT_DIR/NAME, NAME, batch limit and queue delay
taken from LATENCY_TABLE (JSON written by `kis-e2e emulated-table` from a kis-service-profile/v1).
"""
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ("identity", "image", "faulty")


def tiny_cnn(seed: int = 7):  # -> onnx.ModelProto
    """Two strided convolutions, global pooling and a dense layer: cheap on a CPU, real work per byte."""
    # Imported here so that --emulated needs neither numpy nor onnx.
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

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


def emulated(table_path: str, out: str) -> int:
    """Writes the emulated accelerator model configured by the latency table at `table_path`."""
    try:
        with open(table_path) as f:
            table = json.load(f)
        name = table["model"]
        max_batch = int(table["max_batch"])
        delay_us = int(table["queue_delay_us"])
        samples = table["samples"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"make_models.py: {table_path}: not a latency table ({e!r})", file=sys.stderr)
        return 1
    if not name.replace("-", "").replace("_", "").isalnum() or max_batch < 1 or delay_us < 0:
        print(f"make_models.py: {table_path}: bad model name, max_batch or queue_delay_us", file=sys.stderr)
        return 1
    if len(samples) != max_batch:
        print(f"make_models.py: {table_path}: {len(samples)} sample rows for max_batch {max_batch}", file=sys.stderr)
        return 1
    src = os.path.join(HERE, "emulated")
    dst = os.path.join(out, name)
    os.makedirs(os.path.join(dst, "1"), exist_ok=True)
    with open(os.path.join(src, "config.pbtxt.in")) as f:
        config = f.read()
    config = config.replace("@NAME@", name).replace("@MAX_BATCH@", str(max_batch))
    config = config.replace("@QUEUE_DELAY_US@", str(delay_us))
    with open(os.path.join(dst, "config.pbtxt"), "w") as f:
        f.write(config)
    shutil.copy(os.path.join(src, "model.py"), os.path.join(dst, "1", "model.py"))
    shutil.copy(table_path, os.path.join(dst, "latency_table.json"))
    print(f"emulated model written to {dst} (max batch {max_batch}, queue delay {delay_us} us)")
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--emulated":
        return emulated(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print("usage: make_models.py OUT_DIR | make_models.py --emulated LATENCY_TABLE OUT_DIR", file=sys.stderr)
        return 2
    out = sys.argv[1]
    for name in MODELS:
        src = os.path.join(HERE, "models", name)
        dst = os.path.join(out, name)
        os.makedirs(os.path.join(dst, "1"), exist_ok=True)
        shutil.copy(os.path.join(src, "config.pbtxt"), os.path.join(dst, "config.pbtxt"))
        shutil.copy(os.path.join(src, "model.py"), os.path.join(dst, "1", "model.py"))
    import onnx

    onnx.save(tiny_cnn(), os.path.join(out, "image", "1", "model.onnx"))
    print(f"models written to {out}: {', '.join(MODELS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
