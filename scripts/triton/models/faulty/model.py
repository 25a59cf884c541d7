"""faulty: delays, error responses and exceptions chosen by the first input value."""
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            first = float(x.flat[0]) if x.size else 0.0
            if first <= -2:
                # Fails the whole execute() call: Triton counts it as a backend failure.
                raise RuntimeError(f"faulty: exception requested (INPUT0[0]={first:g})")
            if first == -1:
                err = pb_utils.TritonError(f"faulty: error response requested (INPUT0[0]={first:g})")
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=err))
                continue
            if first > 0:
                time.sleep(first / 1000.0)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT0", x)]))
        return responses
