"""One de-id worker process, fed one task at a time, replaced after a fixed number of tasks.

Why not ``ProcessPoolExecutor(max_tasks_per_child=N)``: on Python 3.11 it left the pool
without a worker after exactly N tasks with more queued (measured here: nothing was
de-identified again). Why not a new pool every N *submissions*: with a backlog (an
instance arrives faster than the library de-identifies it), the old pool keeps its queued
tasks and runs next to the new one, so two or three workers, each ~120 MB with the library
loaded, ran at once. Here a thread hands tasks over one by one, so the worker is replaced
only between tasks and there is never more than one. Two tasks are handed over at a time,
so the worker never waits for this thread between instances.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from . import worker

log = logging.getLogger("fwagent.deid")


def new_pool(workers: int = 1) -> ProcessPoolExecutor:
    """Worker processes started fresh (spawn: nothing inherited from the agent, and the
    library's process-wide changes stay in them); their log records are collected."""
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=worker.quiet,
    )


WINDOW = 2  # tasks handed to the worker at once: it starts the next without waiting for us

_Item = tuple[Callable[..., Any], tuple[Any, ...], "Future[Any]"]


class RecycledWorker:
    """``submit(fn, *args)`` like an executor; tasks run one after another in one process,
    which is replaced every ``tasks_per_worker`` tasks, after a crash, or after a task
    overran ``timeout`` (the hung process is killed)."""

    def __init__(self, tasks_per_worker: int, timeout: float) -> None:
        self.tasks_per_worker = tasks_per_worker
        self.timeout = timeout
        self.recycled = 0  # workers replaced after their quota
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._pool: ProcessPoolExecutor | None = None
        self._tasks = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="deid-dispatch", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        if self._stopping:
            raise RuntimeError("de-identification is stopped")
        future: Future[Any] = Future()
        self._queue.put((fn, args, future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel what has not started, let the running task finish, end the worker."""
        self._stopping = True
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        inflight: deque[tuple[Future[Any], Future[Any]]] = deque()  # (worker's, caller's)
        held: _Item | None = None
        closing = False
        while True:
            while not closing and len(inflight) < WINDOW:
                if held is None:
                    try:
                        held = self._queue.get(block=not inflight)
                    except queue.Empty:
                        break
                    if held is None:  # stop()
                        closing = True
                        break
                if self._pool is not None and self._tasks >= self.tasks_per_worker:
                    if inflight:
                        break  # the worker finishes its quota first: never two workers
                    self._close()
                    self.recycled += 1
                (fn, args, future), held = held, None
                if self._stopping:
                    future.cancel()
                elif future.set_running_or_notify_cancel():
                    inflight.append((self._start(fn, args), future))
            if not inflight:
                if closing:
                    break
                continue
            self._finish(*inflight.popleft())
        self._close()
        while True:  # anything queued behind the stop
            try:
                left = self._queue.get_nowait()
            except queue.Empty:
                break
            if left is not None:
                left[2].cancel()

    def _start(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Future[Any]:
        if self._pool is None:
            self._pool = new_pool(1)
            self._tasks = 0
        self._tasks += 1
        return self._pool.submit(fn, *args)

    def _finish(self, running: Future[Any], future: Future[Any]) -> None:
        """Wait for one task and hand its outcome to the caller's future."""
        try:
            future.set_result(running.result(timeout=self.timeout))
        except FutureTimeout:
            log.warning("de-id task overran %.0fs; killing the worker", self.timeout)
            self._close(kill=True)
            future.set_exception(TimeoutError(f"not de-identified within {self.timeout:.0f}s"))
        except (BrokenProcessPool, CancelledError):
            if self._pool is not None:
                log.warning("de-id worker died; starting a new one")
                self._close(kill=True)
            future.set_exception(BrokenProcessPool("the de-id worker died"))
        except BaseException as exc:  # noqa: BLE001 - the task itself raised: hand it over
            future.set_exception(exc)

    def _close(self, kill: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            # the one private attribute used: ProcessPoolExecutor has no public way to end
            # a hung worker before Python 3.14; without it the process would linger
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
        pool.shutdown(wait=not kill, cancel_futures=True)
