"""Locust peer for the benchmark: FastHttpUser, no think time, one request per task.

Environment: BENCH_PATH (default /file), BENCH_METHOD (GET or POST), BENCH_BODY_FILE,
BENCH_CONTENT_TYPE, BENCH_HEADER_LEN (Inference-Header-Content-Length for binary tensors).
"""
import os

from locust import FastHttpUser, constant, task

PATH = os.environ.get("BENCH_PATH", "/file")
METHOD = os.environ.get("BENCH_METHOD", "GET")
BODY = None
if os.environ.get("BENCH_BODY_FILE"):
    with open(os.environ["BENCH_BODY_FILE"], "rb") as f:
        BODY = f.read()
HEADERS = {}
if os.environ.get("BENCH_CONTENT_TYPE"):
    HEADERS["Content-Type"] = os.environ["BENCH_CONTENT_TYPE"]
if os.environ.get("BENCH_HEADER_LEN"):
    HEADERS["Inference-Header-Content-Length"] = os.environ["BENCH_HEADER_LEN"]


class BenchUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def hit(self):
        if METHOD == "GET":
            self.client.get(PATH, headers=HEADERS)
        else:
            self.client.request(METHOD, PATH, data=BODY, headers=HEADERS)
