"""The emulated accelerator: a Triton model whose compute is a wait.

A stand-in for a GPU, named as such. A 2-core machine cannot give each CPU-bound Triton replica
its own capacity, so this model does no arithmetic: for each batch Triton's dynamic batcher hands
it, it sleeps for a batch execution time drawn from a latency table (sorted samples per batch size,
compiled from a `kis-service-profile/v1` by `kis-e2e emulated-table`, which uses kis-sim's own
sampler), then echoes INPUT0 as OUTPUT0. One model instance executes one batch at a time, like one
GPU, so each replica has its own capacity while costing little host CPU.
"""
import json
import os
import random
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        path = os.path.join(args["model_repository"], "latency_table.json")
        with open(path) as f:
            table = json.load(f)
        self.samples = table["samples"]
        if not self.samples or any(len(s) < 2 for s in self.samples):
            raise pb_utils.TritonModelException(f"{path}: every batch size needs at least 2 samples")
        # Each replica draws independently, like separate devices.
        self.rng = random.Random(int.from_bytes(os.urandom(8), "little"))

    def draw(self, size):
        """A batch time in seconds: the inverse CDF of the sorted samples at a uniform rank."""
        s = self.samples[min(max(size, 1), len(self.samples)) - 1]
        x = self.rng.random() * (len(s) - 1)
        i = min(int(x), len(s) - 2)
        return s[i] + (x - i) * (s[i + 1] - s[i])

    def execute(self, requests):
        inputs = [pb_utils.get_input_tensor_by_name(r, "INPUT0").as_numpy() for r in requests]
        size = sum(int(x.shape[0]) for x in inputs)
        time.sleep(self.draw(size))
        return [
            pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", x.astype(np.float32))])
            for x in inputs
        ]
