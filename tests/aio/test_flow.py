from sseserver.aio.flow import FlowControl


def test_pause_and_resume_are_idempotent() -> None:
    calls: list[str] = []
    flow = FlowControl()
    flow.attach(lambda: calls.append("pause"), lambda: calls.append("resume"))
    flow.pause()
    flow.pause()
    flow.resume()
    flow.resume()
    flow.pause()
    assert calls == ["pause", "resume", "pause"]
    assert flow.pauses == 2
    assert "paused=True" in repr(flow)


def test_attach_while_paused_pauses_the_producer_at_once() -> None:
    calls: list[str] = []
    flow = FlowControl()
    flow.pause()
    flow.attach(lambda: calls.append("pause"), lambda: calls.append("resume"))
    assert calls == ["pause"]
    flow.detach()
    flow.resume()
    assert calls == ["pause"]
