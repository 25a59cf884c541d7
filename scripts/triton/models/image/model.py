"""image: runs model.onnx with onnxruntime over the whole dynamic batch in one call."""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        threads = int(config.get("parameters", {}).get("intra_op_threads", {}).get("string_value", "1"))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        batches = [pb_utils.get_input_tensor_by_name(r, "images").as_numpy() for r in requests]
        sizes = [b.shape[0] for b in batches]
        logits = self.session.run(["logits"], {"images": np.concatenate(batches, axis=0)})[0]
        responses = []
        start = 0
        for n in sizes:
            out = pb_utils.Tensor("logits", logits[start : start + n])
            responses.append(pb_utils.InferenceResponse(output_tensors=[out]))
            start += n
        return responses
