"""passage.serve.batcher on its own: workers side by side, requests in pieces, isolation."""

import asyncio
import threading

import pytest

from passage.serve.batcher import Batcher, Overloaded


def _serve(batcher, requests):
    """Submit every request (a list of texts) concurrently; their answers or exceptions."""
    async def main():
        return await asyncio.gather(*(batcher.submit(r) for r in requests),
                                    return_exceptions=True)

    try:
        return asyncio.run(main())
    finally:
        batcher.stop()


def test_two_workers_run_two_batches_at_the_same_time():
    both = threading.Barrier(2, timeout=10)  # broken unless two batches are inside at once
    names = set()

    def run(texts):
        both.wait()
        names.add(threading.current_thread().name)
        return [t.upper() for t in texts]

    batcher = Batcher(run, max_batch_size=1, max_wait_ms=0, workers=2)
    assert _serve(batcher, [["a"], ["b"]]) == [["A"], ["B"]]
    assert len(names) == 2


def test_a_large_request_runs_in_pieces_and_answers_in_order():
    calls = []
    lock = threading.Lock()

    def run(texts):
        with lock:
            calls.append(list(texts))
        return [f"<{t}>" for t in texts]

    texts = [str(i) for i in range(10)]
    batcher = Batcher(run, max_batch_size=4, max_wait_ms=0, workers=2)
    assert _serve(batcher, [texts]) == [[f"<{t}>" for t in texts]]
    assert sorted(len(c) for c in calls) == [2, 4, 4]
    assert sorted(t for c in calls for t in c) == sorted(texts)


def test_a_failing_piece_fails_its_request_only():
    def run(texts):
        if "poison" in texts:
            raise ValueError("bad text")
        return [len(t) for t in texts]

    batcher = Batcher(run, max_batch_size=2, max_wait_ms=0, workers=1)
    out = _serve(batcher, [["ok"], ["a", "b", "poison"], ["fine"]])
    assert out[0] == [2] and out[2] == [4]
    assert isinstance(out[1], ValueError)


def test_the_initializer_runs_in_every_worker_before_any_batch():
    seen, lock = [], threading.Lock()

    def init():
        with lock:
            seen.append(threading.current_thread().name)

    batcher = Batcher(lambda texts: texts, workers=3, initializer=init)
    batcher.start()
    assert len(seen) == 3  # start() returns once every worker is set up
    assert _serve(batcher, [["x"]]) == [["x"]]


def test_a_full_queue_refuses_at_once():
    entered, gate = threading.Event(), threading.Event()

    def run(texts):
        entered.set()
        assert gate.wait(10)
        return texts

    batcher = Batcher(run, max_batch_size=1, max_wait_ms=0, max_queue=2, workers=1)

    async def main():
        first = asyncio.ensure_future(batcher.submit(["a"]))
        while not entered.is_set():  # the worker runs it: the queue is empty again
            await asyncio.sleep(0.001)
        queued = asyncio.ensure_future(batcher.submit(["b", "c"]))
        while batcher.depth < 2:
            await asyncio.sleep(0.001)
        with pytest.raises(Overloaded):
            await batcher.submit(["d"])
        gate.set()
        return await first, await queued

    try:
        assert asyncio.run(main()) == (["a"], ["b", "c"])
    finally:
        gate.set()
        batcher.stop()


def test_a_worker_gathers_a_fuller_batch_only_while_the_other_workers_are_idle():
    from passage.serve.batcher import _Job, _Piece

    batcher = Batcher(lambda texts: texts, max_batch_size=8, max_wait_ms=5000, workers=2)
    batcher._queue.append(_Piece(_Job(None, None, ["a"]), 0, 1))  # (threads not started)
    batcher._queued_texts, batcher._idle = 1, 1  # the other worker waits for texts
    got = []
    worker = threading.Thread(target=lambda: got.append(batcher._next_batch(True)))
    worker.start()
    worker.join(0.3)
    assert worker.is_alive()  # gathering: every other worker is idle
    with batcher._cond:  # the other worker starts a batch: this one stops waiting
        batcher._idle = 0
        batcher._cond.notify_all()
    worker.join(2.0)  # (not the 5 s of max_wait_ms)
    assert not worker.is_alive()
    assert [p.texts for p in got[0]] == [["a"]] and batcher.depth == 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_threads_start_again_after_they_all_ended():
    calls = []

    def init():  # the first worker's initializer fails: its thread ends
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("no core for you")

    batcher = Batcher(lambda texts: [t * 2 for t in texts], workers=1, initializer=init)
    batcher.start()
    batcher._threads[0].join(5)
    assert not batcher._threads[0].is_alive()
    try:  # submit starts a new worker (bounded: a batcher that did not would never answer)
        assert asyncio.run(asyncio.wait_for(batcher.submit(["ab"]), 10)) == ["abab"]
    finally:
        batcher.stop()
    assert len(calls) == 2
