"""What runs on the Ray cluster for ``anim4d serve --executor ray`` (see
:mod:`backend.server.ray_executor`, the gateway's side).

``run_job_task`` is the Ray task of one job: :func:`backend.server.worker.worker_main`, the same
function a local worker process runs, with a :class:`ChannelConn` for its pipe. ``send`` only
queues; a sender thread delivers the messages to the gateway's channel actor at least every
:data:`CANCEL_POLL_S` and reads back whether the job was cancelled (what ``ctx.cancelled()``
sees); ``close`` delivers the rest before the task returns, so a final message is in the channel
before the task is seen to end. Ray is imported only when these are first used.
"""

from __future__ import annotations

import threading

#: how often a running task asks the channel whether it was cancelled (and sends what it has)
CANCEL_POLL_S = 0.2

_CACHE: dict[str, object] = {}


def channel_class():
    """The channel actor class (built on first use: importing this module imports no Ray)."""
    if "channel" not in _CACHE:
        import ray

        @ray.remote(num_cpus=0, max_restarts=0)
        class Channel:
            """Per gateway: messages from tasks, keyed by job attempt, and cancel flags."""

            def __init__(self) -> None:
                self.messages: list = []
                self.previews: dict[str, tuple] = {}  # the latest per job attempt only
                self.cancelled: set[str] = set()

            def put(self, key: str, messages: list) -> bool:
                for m in messages:
                    if m[0] == "preview":
                        self.previews[key] = m
                    else:
                        self.messages.append((key, m))
                return key in self.cancelled

            def drain(self) -> list:
                """Pending previews first (a worker sends its final message after them)."""
                out = [*self.previews.items(), *self.messages]
                self.messages, self.previews = [], {}
                return out

            def cancel(self, key: str) -> None:
                self.cancelled.add(key)

            def forget(self, key: str) -> None:
                self.cancelled.discard(key)

        _CACHE["channel"] = Channel
    return _CACHE["channel"]


def task_function():
    if "task" not in _CACHE:
        import ray

        _CACHE["task"] = ray.remote(run_job_task)
    return _CACHE["task"]


class ChannelConn:
    """The worker's end in a Ray task: ``send`` queues, a sender thread delivers (and reads the
    cancel flag), ``close`` delivers the rest before returning."""

    def __init__(self, channel, key: str):
        self.channel, self.key = channel, key
        self.cancel = threading.Event()
        self._pending: list = []
        self._lock = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="anim4d-sender", daemon=True)
        self._thread.start()

    def send(self, msg: tuple) -> None:
        with self._lock:
            self._pending.append(msg)
            self._lock.notify()

    def _flush(self) -> None:
        import ray

        with self._lock:
            batch, self._pending = self._pending, []
        if ray.get(self.channel.put.remote(self.key, batch)):
            self.cancel.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                if not self._pending:
                    self._lock.wait(CANCEL_POLL_S)
                if self._closed:
                    return
            self._flush()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join()
        self._flush()


def run_job_task(channel, key: str, args: tuple) -> None:
    """The Ray task: ``worker_main`` with a channel for a pipe."""
    from backend.server.worker import worker_main

    conn = ChannelConn(channel, key)
    job_id, runner, params, inputs, job_dir, _, _, models = args
    worker_main(job_id, runner, params, inputs, job_dir, conn, conn.cancel, models)
